import { Injectable } from '@nestjs/common';
import { EntityManager } from 'typeorm';
import { RecordedEvent } from '../../src/event-store/event-store.port';
import { Projector } from '../../src/projection-runner/projector';
import {
  SYNC_JOB_CREATED,
  SYNC_JOB_STREAM_PREFIX,
  SYNC_POINT_PROGRESSED,
  SYNC_POINT_REFUSED,
  SYNC_POINT_STARTED,
  SYNC_RETENTION_APPLIED,
  SYNC_RUN_COMPLETED,
  SYNC_RUN_FAILED,
  SYNC_RUN_STARTED,
  SyncJobCreated,
  SyncPointProgressed,
  SyncPointRefused,
  SyncPointStarted,
  SyncRetentionApplied,
  SyncRunCompleted,
  SyncRunFailed,
  SyncRunStarted,
} from '../../src/sync/jobs/sync-job.events';

/** Sync jobs and each of their runs (rm_sync_runs), as the sync job streams tell them. */
@Injectable()
export class SyncJobsProjector implements Projector {
  readonly name = 'sync-jobs';
  readonly filter = { streamPrefixes: [SYNC_JOB_STREAM_PREFIX] };
  readonly tables = ['rm_sync_jobs', 'rm_sync_runs'];

  async apply(event: RecordedEvent, manager: EntityManager): Promise<void> {
    const q = (sql: string, params: unknown[]) => manager.query(sql, params);
    switch (event.type) {
      case SYNC_JOB_CREATED: {
        const d = event.data as SyncJobCreated['data'];
        await q(
          `INSERT INTO rm_sync_jobs (sync_job_id, remote_id, repository_id, remote_repository_id, vms, schedule, time_zone, max_bytes_per_second, retention, created_at)
           VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10) ON CONFLICT (sync_job_id) DO NOTHING`,
          [d.syncJobId, d.remoteId, d.repositoryId, d.remoteRepositoryId, d.vms ? JSON.stringify(d.vms) : null, d.schedule, d.timeZone, d.maxBytesPerSecond ?? null, d.retention ? JSON.stringify(d.retention) : null, event.createdAt],
        );
        return;
      }
      case SYNC_RUN_STARTED: {
        const d = event.data as SyncRunStarted['data'];
        await q(`INSERT INTO rm_sync_runs (run_id, sync_job_id, status, trigger, started_at, synced) VALUES ($1, $2, 'running', $3, $4, '[]') ON CONFLICT (run_id) DO NOTHING`, [d.runId, d.syncJobId, d.trigger, event.createdAt]);
        return;
      }
      case SYNC_POINT_STARTED: {
        const d = event.data as SyncPointStarted['data'];
        await q(`UPDATE rm_sync_runs SET restore_point_id = $2 WHERE run_id = $1`, [d.runId, d.restorePointId]);
        return;
      }
      case SYNC_RUN_COMPLETED: {
        const d = event.data as SyncRunCompleted['data'];
        // a run that refused points did not take everything the remote offered: it says so, naming them
        const refused = d.refused ?? [];
        await q(`UPDATE rm_sync_runs SET status = $6, finished_at = $2, synced = $3, already_held = $4, bytes_received = $5, restore_point_id = NULL, refused = $7 WHERE run_id = $1`, [
          d.runId,
          event.createdAt,
          JSON.stringify(d.synced),
          d.alreadyHeld,
          d.bytesReceived,
          refused.length ? 'completed-with-warnings' : 'completed',
          JSON.stringify(refused),
        ]);
        return;
      }
      case SYNC_POINT_REFUSED: {
        const { runId, restorePointId, vmId, reason } = event.data as SyncPointRefused['data'];
        await q(`UPDATE rm_sync_runs SET refused = refused || $2::jsonb WHERE run_id = $1`, [runId, JSON.stringify([{ restorePointId, vmId, reason }])]);
        return;
      }
      case SYNC_POINT_PROGRESSED: {
        const { runId, restorePointId, diskId, bytesDone, bytesPlanned, rate } = event.data as SyncPointProgressed['data'];
        await q(`UPDATE rm_sync_runs SET progress = $2 WHERE run_id = $1`, [runId, JSON.stringify({ restorePointId, diskId, bytesDone, bytesPlanned, rate })]);
        return;
      }
      case SYNC_RETENTION_APPLIED: {
        const d = event.data as SyncRetentionApplied['data'];
        await q(`UPDATE rm_sync_runs SET pruned = pruned || $2::jsonb, deferred = deferred || $3::jsonb WHERE run_id = $1`, [d.runId, JSON.stringify(d.pruned), JSON.stringify(d.deferred)]);
        return;
      }
      case SYNC_RUN_FAILED: {
        const d = event.data as SyncRunFailed['data'];
        await q(`UPDATE rm_sync_runs SET status = 'failed', finished_at = $2, synced = $3, bytes_received = $4, reason = $5, restore_point_id = $6 WHERE run_id = $1`, [
          d.runId,
          event.createdAt,
          JSON.stringify(d.synced),
          d.bytesReceived,
          d.reason,
          d.restorePointId,
        ]);
        return;
      }
    }
  }
}
