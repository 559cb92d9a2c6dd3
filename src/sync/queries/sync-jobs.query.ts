import { Query } from '@nestjs/cqrs';
import type { SyncJobDefinition } from '../jobs/sync-job.events';

export interface SyncRunRecord {
  runId: string;
  /** completed-with-warnings: the run ended and refused points the remote listed (`refused` names them). */
  status: 'running' | 'completed' | 'completed-with-warnings' | 'failed';
  trigger: 'manual' | 'schedule';
  startedAt: Date;
  finishedAt: Date | null;
  synced: string[];
  alreadyHeld: number | null;
  bytesReceived: number | null;
  reason: string | null;
  /** The point being copied now, or the one the run failed on. */
  restorePointId: string | null;
  /** What the job's own retention removed after the run, and what it kept for now and why. */
  pruned: string[];
  deferred: { restorePointId: string; reason: string }[];
  /** The newest report of the copy: which point and disk, bytes done of planned, average bytes per second. */
  progress: { restorePointId: string; diskId: string; bytesDone: number; bytesPlanned: number; rate: number } | null;
  /** The points the remote listed that this hub refused, and why (SyncPointRefused); nothing of them was written. */
  refused: { restorePointId: string; vmId: string; reason: string }[];
}

/** The job as created, when, and its newest run. */
export interface SyncJobRecord extends SyncJobDefinition {
  createdAt: Date;
  lastRun: SyncRunRecord | null;
}

export class ListSyncJobsQuery extends Query<SyncJobRecord[]> {}

/** 404 when there is no such sync job. */
export class GetSyncJobQuery extends Query<SyncJobRecord> {
  constructor(readonly syncJobId: string) {
    super();
  }
}
