import { DomainEvent } from '../../eventing/aggregate';
import type { RetentionRules } from '../../policies/policy.events';

export const SYNC_JOB_CREATED = 'SyncJobCreated';
export const SYNC_RUN_STARTED = 'SyncRunStarted';
export const SYNC_POINT_STARTED = 'SyncPointStarted';
export const SYNC_RUN_COMPLETED = 'SyncRunCompleted';
export const SYNC_RUN_FAILED = 'SyncRunFailed';
export const SYNC_RUN_ADOPTED = 'SyncRunAdopted';
export const SYNC_RETENTION_APPLIED = 'SyncRetentionApplied';
export const SYNC_POINT_PROGRESSED = 'SyncPointProgressed';
export const SYNC_POINT_REFUSED = 'SyncPointRefused';

export interface SyncJobDefinition {
  syncJobId: string;
  remoteId: string;
  /** This hub's repository the points are written into. */
  repositoryId: string;
  /** The remote's repository they are read from; null: the remote's only one. */
  remoteRepositoryId: string | null;
  /** Only these VMs' points; null: every VM's. */
  vms: string[] | null;
  schedule: string | null;
  timeZone: string | null;
  /** Disk data is read from the remote no faster than this on average (a WAN link shared with other traffic); null: as fast as it goes. */
  maxBytesPerSecond: number | null;
  /**
   * This hub's own prune rules for the chains the job fills (PBS semantics, as policies have; calendar periods in
   * `timeZone`, else UTC), applied after each run; null keeps every point. The remote's retention never reaches here.
   */
  retention: RetentionRules | null;
}

export type SyncJobCreated = DomainEvent<typeof SYNC_JOB_CREATED, SyncJobDefinition & Record<string, unknown>>;
/** `hubInstance`: the hub process's data directory that runs it; only that hub, restarted, ends it as failed. */
export type SyncRunStarted = DomainEvent<typeof SYNC_RUN_STARTED, { syncJobId: string; runId: string; trigger: 'manual' | 'schedule'; hubInstance: string }>;
/**
 * One point's copy began: its files are being written, and the remote serves its disks through `exportId`. A run
 * that ends without recording the point (a crash) leaves both: the next run removes the files and closes the export.
 */
export type SyncPointStarted = DomainEvent<
  typeof SYNC_POINT_STARTED,
  { syncJobId: string; runId: string; restorePointId: string; vmId: string; files: string[]; exportId: string | null }
>;
/** How far the copy of a point's disk got: every few seconds while it runs, and at its end. */
export type SyncPointProgressed = DomainEvent<
  typeof SYNC_POINT_PROGRESSED,
  { syncJobId: string; runId: string; restorePointId: string; diskId: string; bytesDone: number; bytesPlanned: number; rate: number }
>;
/**
 * A point the remote listed that this hub will not take (an id that is not one, a createdAt ahead of this hub's clock,
 * a parent that is nowhere): nothing of it was written, and the run went on. The ids are as the remote sent them, a
 * value that is no identifier JSON-quoted and cut to 80 characters.
 */
export type SyncPointRefused = DomainEvent<typeof SYNC_POINT_REFUSED, { syncJobId: string; runId: string; restorePointId: string; vmId: string; reason: string }>;
/** `refused`: the run's SyncPointRefused, again; a run that refused any ended with warnings. Absent in runs recorded before refusals were. */
export type SyncRunCompleted = DomainEvent<
  typeof SYNC_RUN_COMPLETED,
  { syncJobId: string; runId: string; synced: string[]; alreadyHeld: number; bytesReceived: number; durationMs: number; refused?: SyncRefusal[] }
>;
export type SyncRefusal = { restorePointId: string; vmId: string; reason: string };
/**
 * A run whose hub process is gone for good (`from`), claimed by the hub process that ends it (`hubInstance`): one
 * hub wins the claim, and ends it as the owner would at its restart; one that dies doing so is taken over in turn.
 */
export type SyncRunAdopted = DomainEvent<typeof SYNC_RUN_ADOPTED, { syncJobId: string; runId: string; from: string; hubInstance: string }>;
export type SyncRunFailed = DomainEvent<
  typeof SYNC_RUN_FAILED,
  { syncJobId: string; runId: string; reason: string; restorePointId: string | null; synced: string[]; bytesReceived: number }
>;
/** The job's own retention applied to one chain after a run: what it removed, and what it had to keep for now and why. */
export type SyncRetentionApplied = DomainEvent<
  typeof SYNC_RETENTION_APPLIED,
  { syncJobId: string; runId: string; vmId: string; repositoryId: string; kept: number; pruned: string[]; deferred: { restorePointId: string; reason: string }[] }
>;
export type SyncJobEvent = SyncJobCreated | SyncRunStarted | SyncPointStarted | SyncPointProgressed | SyncPointRefused | SyncRunCompleted | SyncRunFailed | SyncRunAdopted | SyncRetentionApplied;

export const SYNC_JOB_STREAM_PREFIX = 'sync-job-';
export const syncJobStream = (syncJobId: string) => `${SYNC_JOB_STREAM_PREFIX}${syncJobId}`;
