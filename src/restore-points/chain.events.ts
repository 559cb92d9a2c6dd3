import { DomainEvent } from '../eventing/aggregate';

export const RESTORE_POINT_ADDED = 'RestorePointAdded';
export const RESTORE_POINT_DELETE_STARTED = 'RestorePointDeleteStarted';
export const RESTORE_POINT_MERGED = 'RestorePointMerged';
export const RESTORE_POINT_DELETED = 'RestorePointDeleted';
export const RESTORE_POINT_VERIFIED = 'RestorePointVerified';
export const CHAIN_BROKEN = 'ChainBroken';

export interface PointDisk {
  diskId: string;
  /** Relative to the repository root. */
  file: string;
  parentFile: string | null;
  virtualSize: number;
  fileBytes: number;
  changeRef: string | null;
}

export interface RestorePoint {
  restorePointId: string;
  vmId: string;
  repositoryId: string;
  backupId: string | null;
  type: 'full' | 'incremental';
  parentId: string | null;
  createdAt: string;
  disks: PointDisk[];
}

export type DeleteStrategy = 'remove-newest' | 'merge-into-child' | 'remove-middle';

export type RestorePointAdded = DomainEvent<typeof RESTORE_POINT_ADDED, RestorePoint & Record<string, unknown>>;
export type RestorePointDeleteStarted = DomainEvent<
  typeof RESTORE_POINT_DELETE_STARTED,
  { restorePointId: string; strategy: DeleteStrategy; childId: string | null; parentId: string | null }
>;
/** The oldest point was merged into its child, which is now a full point with these disks. */
export type RestorePointMerged = DomainEvent<typeof RESTORE_POINT_MERGED, { restorePointId: string; intoId: string; disks: PointDisk[] }>;
export type RestorePointDeleted = DomainEvent<typeof RESTORE_POINT_DELETED, { restorePointId: string; strategy: DeleteStrategy; childDisks: PointDisk[] | null }>;
export type RestorePointVerified = DomainEvent<typeof RESTORE_POINT_VERIFIED, { restorePointId: string; ok: boolean; problems: string[]; warnings: string[] }>;
export type ChainBroken = DomainEvent<typeof CHAIN_BROKEN, { reason: string; restorePointId: string | null }>;
export type ChainEvent = RestorePointAdded | RestorePointDeleteStarted | RestorePointMerged | RestorePointDeleted | RestorePointVerified | ChainBroken;

export const CHAIN_STREAM_PREFIX = 'chain-';
/** One chain per VM per repository. */
export const chainStream = (vmId: string, repositoryId: string) => `${CHAIN_STREAM_PREFIX}${vmId}-${repositoryId}`;
