import { DomainEvent } from '../eventing/aggregate';
import type { Consistency, DiskLeftOut } from '../wire/backup-protocol';

export const BACKUP_REQUESTED = 'BackupRequested';
export const BACKUP_STARTED = 'BackupStarted';
export const BACKUP_TYPE_DECIDED = 'BackupTypeDecided';
export const BACKUP_TARGETS_PREPARED = 'BackupTargetsPrepared';
export const SNAPSHOT_REQUESTED = 'SnapshotRequested';
export const SNAPSHOT_CREATED = 'SnapshotCreated';
export const DISK_TRANSFER_STARTED = 'DiskTransferStarted';
export const DISK_TRANSFER_PROGRESSED = 'DiskTransferProgressed';
export const DISK_TRANSFER_COMPLETED = 'DiskTransferCompleted';
export const SNAPSHOT_REMOVED = 'SnapshotRemoved';
export const BACKUP_TARGETS_RELEASED = 'BackupTargetsReleased';
export const BACKUP_COMPLETED = 'BackupCompleted';
export const BACKUP_FAILED = 'BackupFailed';
export const BACKUP_CANCEL_REQUESTED = 'BackupCancelRequested';
export const BACKUP_REQUEST_VOIDED = 'BackupRequestVoided';

export type BackupType = 'full' | 'incremental';
export type RequestedType = BackupType | 'auto';
export type BackupPhase = 'queued' | 'preparing' | 'snapshot' | 'transferring' | 'finalizing' | 'completed' | 'failed';

/**
 * `knownFrom` (a full into a chunk repository): the point file the target started from, a point of a VM the same agent
 * reports; the agent sends only the blocks that differ from it. Absent when the target started empty.
 */
export type Target = { diskId: string; file: string; parentFile: string | null; virtualSize: number; leaseId: string; port: number; exportName: string; knownFrom?: string };

export type BackupRequested = DomainEvent<typeof BACKUP_REQUESTED, { jobId: string; vmId: string; agentId: string; repositoryId: string; requestedType: RequestedType }>;
/** `hubInstance`: the hub process that runs the job (the one holding the agent's session); absent on jobs started before it was recorded. */
export type BackupStarted = DomainEvent<typeof BACKUP_STARTED, { jobId: string; hubInstance?: string }>;
/**
 * `sincePointId`: the point the agent reads the changes since (an incremental's parent; a synthetic full's source), or
 * null for a full read of the disks. `synthesizedFrom`: on a synthetic full, the point whose view the hub copies into
 * the new point's standalone files; null otherwise, absent on events recorded before synthetic fulls. `disksLeftOut`:
 * the VM's disks that hold data the agent cannot read (a network or block device, an unsupported format), which
 * the point will not hold; absent on events recorded before it was reported.
 */
export type BackupTypeDecided = DomainEvent<
  typeof BACKUP_TYPE_DECIDED,
  { jobId: string; type: BackupType; reason: string; restorePointId: string; sincePointId: string | null; synthesizedFrom?: string | null; disksLeftOut?: DiskLeftOut[] }
>;
export type BackupTargetsPrepared = DomainEvent<typeof BACKUP_TARGETS_PREPARED, { jobId: string; targets: Target[] }>;
export type SnapshotRequested = DomainEvent<typeof SNAPSHOT_REQUESTED, { jobId: string; agentId: string; diskIds: string[] }>;
/** The consistency fields come from sources that can tell (libvirt); absent on older events and powered-off images. */
export type SnapshotCreated = DomainEvent<typeof SNAPSHOT_CREATED, { jobId: string; snapshotId: string; diskIds: string[] } & Partial<Consistency>>;
export type DiskTransferStarted = DomainEvent<typeof DISK_TRANSFER_STARTED, { jobId: string; diskId: string; bytesPlanned: number }>;
export type DiskTransferProgressed = DomainEvent<typeof DISK_TRANSFER_PROGRESSED, { jobId: string; diskId: string; bytesDone: number; bytesPlanned: number; rate: number }>;
export type DiskTransferCompleted = DomainEvent<
  typeof DISK_TRANSFER_COMPLETED,
  { jobId: string; diskId: string; bytesWritten: number; bytesZeroed: number; bytesPlanned: number; durationMs: number; changeRef: string | null; bytesKnown?: number }
>;
export type SnapshotRemoved = DomainEvent<typeof SNAPSHOT_REMOVED, { jobId: string; snapshotId: string }>;
export type BackupTargetsReleased = DomainEvent<typeof BACKUP_TARGETS_RELEASED, { jobId: string; filesRemoved: string[] }>;
export type BackupCompleted = DomainEvent<typeof BACKUP_COMPLETED, { jobId: string; restorePointId: string; bytesWritten: number }>;
export type BackupFailed = DomainEvent<typeof BACKUP_FAILED, { jobId: string; phase: BackupPhase; reason: string }>;
export type BackupCancelRequested = DomainEvent<typeof BACKUP_CANCEL_REQUESTED, { jobId: string }>;
/** The only event of a job whose request died between claiming the VM and recording itself (the job never existed). */
export type BackupRequestVoided = DomainEvent<typeof BACKUP_REQUEST_VOIDED, { jobId: string; reason: string }>;

export type BackupEvent =
  | BackupRequested
  | BackupStarted
  | BackupTypeDecided
  | BackupTargetsPrepared
  | SnapshotRequested
  | SnapshotCreated
  | DiskTransferStarted
  | DiskTransferProgressed
  | DiskTransferCompleted
  | SnapshotRemoved
  | BackupTargetsReleased
  | BackupCompleted
  | BackupFailed
  | BackupCancelRequested
  | BackupRequestVoided;

export const BACKUP_STREAM_PREFIX = 'backup-job-';
export const backupStream = (jobId: string) => `${BACKUP_STREAM_PREFIX}${jobId}`;
