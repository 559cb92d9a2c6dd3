import { DomainEvent } from '../eventing/aggregate';
import type { DiskLeftOut } from '../wire/backup-protocol';

export const RESTORE_POINT_ADDED = 'RestorePointAdded';
export const RESTORE_POINT_SYNCED = 'RestorePointSynced';
export const RESTORE_POINT_DELETE_STARTED = 'RestorePointDeleteStarted';
export const RESTORE_POINT_MERGED = 'RestorePointMerged';
export const RESTORE_POINT_DELETED = 'RestorePointDeleted';
export const RESTORE_POINT_DELETE_FAILED = 'RestorePointDeleteFailed';
export const RESTORE_POINT_VERIFIED = 'RestorePointVerified';
export const RESTORE_POINT_CORRUPTED = 'RestorePointCorrupted';
export const CHAIN_BROKEN = 'ChainBroken';
export const RESTORE_POINT_RECYCLED = 'RestorePointRecycled';
export const RESTORE_POINT_UNDELETED = 'RestorePointUndeleted';
export const RESTORE_POINT_DELETE_ADOPTED = 'RestorePointDeleteAdopted';

export interface PointDisk {
  diskId: string;
  /** Relative to the repository root. */
  file: string;
  parentFile: string | null;
  virtualSize: number;
  fileBytes: number;
  changeRef: string | null;
  /** The block digests of this disk at this point; absent or null on points recorded before backups hashed what they sent. */
  digests?: DigestRef | null;
}

/**
 * A digest file beside the manifest (src/repositories/qcow2/digest-files.ts) and the SHA-256 of the
 * file itself, so a damaged digest file is told apart from damaged data.
 */
export interface DigestRef {
  /** Relative to the repository root. */
  file: string;
  sha256: string;
  /** Blocks the point wrote (data or zeroes). */
  blocks: number;
}

/** The VM's configuration file beside the manifest (src/repositories/qcow2/configuration-files.ts) and what it holds. */
export interface ConfigurationRef {
  /** Relative to the repository root. */
  file: string;
  sha256: string;
  /** It holds the UEFI variables file, and the emulated TPM's state. */
  nvram: boolean;
  tpm: boolean;
}

export interface RestorePoint {
  restorePointId: string;
  vmId: string;
  repositoryId: string;
  backupId: string | null;
  type: 'full' | 'incremental';
  parentId: string | null;
  createdAt: string;
  /**
   * When the point's immutability window starts, where that is not createdAt: a synced point's is the instant this hub
   * recorded and sealed its copy, by this hub's clock (createdAt is the remote's, and a remote's clock proves nothing
   * here). Absent on a backup's point and on points synced before.
   */
  lockedFrom?: string;
  disks: PointDisk[];
  /**
   * How consistent the point is (`application`: the guest was frozen through its guest agent; `crash`: it was
   * not, `consistencyReason` says why) and how long the guest stayed frozen. Absent on points whose source
   * could not tell (powered-off images of the qemu-image driver) and on points recorded before.
   */
  consistency?: 'application' | 'crash';
  consistencyReason?: string | null;
  freezeMs?: number | null;
  /** The VM's configuration at the point's instant; absent or null when the source recorded none (qemu-image source, older points). */
  configuration?: ConfigurationRef | null;
  /** Disks of the VM that hold data the point does not: the source could not read them (BackupTypeDecided). Absent when none. */
  disksLeftOut?: DiskLeftOut[];
}

export type DeleteStrategy = 'remove-newest' | 'merge-into-child' | 'remove-middle';

export type RestorePointAdded = DomainEvent<typeof RESTORE_POINT_ADDED, RestorePoint & Record<string, unknown>>;

/** Where a synced point came from: the remote hub, the sync job and run that copied it, and what crossed the wire. */
export interface PointSource {
  remoteId: string;
  syncJobId: string;
  runId: string;
  /** The point's repository and backup job on the remote hub. */
  sourceRepositoryId: string;
  sourceBackupId: string | null;
  /** Bytes of disk data read from the remote's exports (data and zeroes asked for), digests and configuration included. */
  bytesReceived: number;
}

/**
 * A point copied from another hub, with its restorePointId, after every block its digests name was read back
 * from this hub's copy and matched: the chain holds it as it would a point a backup added.
 */
export type RestorePointSynced = DomainEvent<typeof RESTORE_POINT_SYNCED, RestorePoint & { synced: PointSource } & Record<string, unknown>>;
export type RestorePointDeleteStarted = DomainEvent<
  typeof RESTORE_POINT_DELETE_STARTED,
  /** `hubInstance`: the hub process that runs the delete (absent on starts recorded before it was named). */
  { restorePointId: string; strategy: DeleteStrategy; childId: string | null; parentId: string | null; hubInstance?: string }
>;
/**
 * A delete whose hub process stopped and did not come back is taken over by another (`hubInstance`), which finishes
 * it from here; `from` is the process it was left by. Only the process that runs a delete touches its files: two
 * running one surgery at once undid each other's work.
 */
export type RestorePointDeleteAdopted = DomainEvent<typeof RESTORE_POINT_DELETE_ADOPTED, { restorePointId: string; hubInstance: string; from: string | null }>;
/** The oldest point was merged into its child, which is now a full point with these disks. */
export type RestorePointMerged = DomainEvent<typeof RESTORE_POINT_MERGED, { restorePointId: string; intoId: string; disks: PointDisk[] }>;
export type RestorePointDeleted = DomainEvent<typeof RESTORE_POINT_DELETED, { restorePointId: string; strategy: DeleteStrategy; childDisks: PointDisk[] | null }>;
/**
 * The delete ended without removing the point. `undone`: its files are as before and the point is intact.
 * Otherwise the file surgery stopped past the point of no return (a merge's commit, a removed file): the point
 * is unusable (corrupt) and a new DELETE of it finishes the job. Either way the chain is no longer busy.
 */
export type RestorePointDeleteFailed = DomainEvent<typeof RESTORE_POINT_DELETE_FAILED, { restorePointId: string; reason: string; undone: boolean }>;
/**
 * A delete (or a prune) moved the point to the recycle bin instead of removing it: its files stay as they are until
 * `purgeAfter` (the hub's SENDENSE_DELETE_GRACE_DAYS after `recycledAt`, by this hub's clock), when the hub deletes it
 * as a DELETE did before; an admin can undelete it until then. `by`: the token that asked.
 */
export type RestorePointRecycled = DomainEvent<typeof RESTORE_POINT_RECYCLED, { restorePointId: string; recycledAt: string; purgeAfter: string; by: string; reason: string }>;
/** An admin took the point back out of the recycle bin: it is a restore point again, its files untouched. */
export type RestorePointUndeleted = DomainEvent<typeof RESTORE_POINT_UNDELETED, { restorePointId: string; by: string }>;
/**
 * How much of what a point reads a verify could compare with recorded digests: every block ('all'),
 * some ('partial': part of its chain was backed up before backups hashed), or nothing ('none').
 */
export type DigestCoverage = 'all' | 'partial' | 'none';

/**
 * `verifiedAt` and `digests` are absent on events recorded before verify read the data back.
 * Only `digests: 'all'` makes a point verified by content; otherwise its checks were structural.
 */
export type RestorePointVerified = DomainEvent<
  typeof RESTORE_POINT_VERIFIED,
  { restorePointId: string; ok: boolean; problems: string[]; warnings: string[]; verifiedAt?: string; digests?: DigestCoverage }
>;

/** A block of a point's own data that, read back, did not match the digest recorded when it was written. */
export interface DamagedRange {
  diskId: string;
  offset: number;
  length: number;
  expected: string;
  actual: string;
  /** The point whose file holds the damaged block (itself, or the point it reads through). */
  inPointId: string;
}

/**
 * One damaged block of `restorePointId`'s own file. Every point in `readsThrough` (later points
 * that do not overwrite that block) reads it from there and is corrupt as well.
 */
export type RestorePointCorrupted = DomainEvent<
  typeof RESTORE_POINT_CORRUPTED,
  { restorePointId: string; diskId: string; offset: number; length: number; expected: string; actual: string; readsThrough: string[] }
>;
export type ChainBroken = DomainEvent<typeof CHAIN_BROKEN, { reason: string; restorePointId: string | null }>;
export type ChainEvent =
  | RestorePointAdded
  | RestorePointSynced
  | RestorePointDeleteStarted
  | RestorePointMerged
  | RestorePointDeleted
  | RestorePointDeleteFailed
  | RestorePointVerified
  | RestorePointCorrupted
  | ChainBroken
  | RestorePointRecycled
  | RestorePointUndeleted
  | RestorePointDeleteAdopted;

export const CHAIN_STREAM_PREFIX = 'chain-';
/** One chain per VM per repository. */
export const chainStream = (vmId: string, repositoryId: string) => `${CHAIN_STREAM_PREFIX}${vmId}-${repositoryId}`;
