import { DomainEvent } from '../eventing/aggregate';
import type { Integrity } from '../restore-points/chain.aggregate';

export const RESTORE_MOUNT_REQUESTED = 'RestoreMountRequested';
export const RESTORE_MOUNT_READY = 'RestoreMountReady';
export const RESTORE_MOUNT_FAILED = 'RestoreMountFailed';
export const RESTORE_MOUNT_ACCESSED = 'RestoreMountAccessed';
export const RESTORE_FILE_DOWNLOADED = 'RestoreFileDownloaded';
export const RESTORE_ARCHIVE_DOWNLOADED = 'RestoreArchiveDownloaded';
export const RESTORE_MOUNT_RELEASED = 'RestoreMountReleased';

/** Why a mount was taken down. */
/** `hub-gone`: another hub took the mount over once the hub process that held it stopped and did not come back. */
export type ReleaseReason = 'requested' | 'idle-timeout' | 'hub-restart' | 'hub-shutdown' | 'helper-exited' | 'hub-gone';

/** One partition (or the whole disk) as the events and the API report it; host paths stay inside the hub. */
export interface MountVolume {
  /** "p1", "p5"... or "disk" when the disk has no partition table. */
  id: string;
  fsType: string | null;
  /** Bytes. */
  size: number;
  label: string | null;
  status: 'mounted' | 'unsupported' | 'failed';
  /** Why it is not mounted; null when it is. */
  reason: string | null;
  /** Byte offset on the disk. */
  start: number;
  partitionType: string | null;
  partitionName: string | null;
  uuid: string | null;
}

export interface MountTarget {
  mountId: string;
  restorePointId: string;
  vmId: string;
  repositoryId: string;
  diskId: string;
  /** Real path of the disk's qcow2 file; its backing chain reads through. */
  file: string;
  /** Real paths of every file the mount reads: `file` and its backing files, newest first. */
  chainFiles: string[];
  /** The hub process (data dir) that holds the mount; only it can serve or release it. */
  hubInstance: string;
  idleTimeoutSeconds: number;
}

export type RestoreMountRequested = DomainEvent<typeof RESTORE_MOUNT_REQUESTED, MountTarget & Record<string, unknown>>;
export type RestoreMountReady = DomainEvent<
  typeof RESTORE_MOUNT_READY,
  { mountId: string; partitionTable: string; diskSize: number; volumes: MountVolume[] }
>;
export type RestoreMountFailed = DomainEvent<typeof RESTORE_MOUNT_FAILED, { mountId: string; reason: string }>;
/** Browsing renews the idle timeout; recorded at most once per throttle window, so the read model's expiry stays close to the truth. */
export type RestoreMountAccessed = DomainEvent<typeof RESTORE_MOUNT_ACCESSED, { mountId: string; volume: string; path: string }>;
export type RestoreFileDownloaded = DomainEvent<
  typeof RESTORE_FILE_DOWNLOADED,
  {
    mountId: string;
    volume: string;
    path: string;
    /** Bytes actually sent. */
    bytes: number;
    /** The byte range asked for ("bytes=0-99"), or null for the whole file. */
    range: string | null;
    /** False when the client went away or the read failed before everything asked for was sent. */
    complete: boolean;
    actor: string;
    /** The restore point's integrity when the download started, as its response header said; absent on downloads recorded before integrity travelled with them. */
    integrity?: Integrity;
  }
>;
export type RestoreArchiveDownloaded = DomainEvent<
  typeof RESTORE_ARCHIVE_DOWNLOADED,
  { mountId: string; volume: string; path: string; format: 'tar.gz' | 'zip'; bytes: number; complete: boolean; actor: string; integrity?: Integrity }
>;
export type RestoreMountReleased = DomainEvent<typeof RESTORE_MOUNT_RELEASED, { mountId: string; reason: ReleaseReason; detail: string | null }>;

export type RestoreMountEvent =
  | RestoreMountRequested
  | RestoreMountReady
  | RestoreMountFailed
  | RestoreMountAccessed
  | RestoreFileDownloaded
  | RestoreArchiveDownloaded
  | RestoreMountReleased;

export const RESTORE_MOUNT_STREAM_PREFIX = 'restore-mount-';
export const restoreMountStream = (mountId: string) => `${RESTORE_MOUNT_STREAM_PREFIX}${mountId}`;
