import { IQueryHandler, QueryHandler } from '@nestjs/cqrs';
import { DataSource } from 'typeorm';
import { DomainError } from '../../src/eventing/domain-error';
import { GetSyncJobQuery, ListSyncJobsQuery, SyncJobRecord } from '../../src/sync/queries/sync-jobs.query';

/** Each job with its newest run. */
const SELECT = `
  SELECT j.sync_job_id, j.remote_id, j.repository_id, j.remote_repository_id, j.vms, j.schedule, j.time_zone, j.max_bytes_per_second, j.retention, j.created_at,
         r.run_id, r.status, r.trigger, r.started_at, r.finished_at, r.synced, r.already_held, r.bytes_received, r.reason, r.restore_point_id, r.pruned, r.deferred, r.progress, r.refused
    FROM rm_sync_jobs j
    LEFT JOIN LATERAL (SELECT * FROM rm_sync_runs WHERE sync_job_id = j.sync_job_id ORDER BY started_at DESC LIMIT 1) r ON true`;

type Row = Record<string, any>;

function record(r: Row): SyncJobRecord {
  return {
    syncJobId: r.sync_job_id,
    remoteId: r.remote_id,
    repositoryId: r.repository_id,
    remoteRepositoryId: r.remote_repository_id,
    vms: r.vms,
    schedule: r.schedule,
    timeZone: r.time_zone,
    maxBytesPerSecond: r.max_bytes_per_second === null ? null : Number(r.max_bytes_per_second),
    retention: r.retention,
    createdAt: r.created_at,
    lastRun: r.run_id
      ? {
          runId: r.run_id,
          status: r.status,
          trigger: r.trigger,
          startedAt: r.started_at,
          finishedAt: r.finished_at,
          synced: r.synced,
          alreadyHeld: r.already_held,
          bytesReceived: r.bytes_received === null ? null : Number(r.bytes_received),
          reason: r.reason,
          restorePointId: r.restore_point_id,
          pruned: r.pruned,
          deferred: r.deferred,
          progress: r.progress,
          refused: r.refused ?? [],
        }
      : null,
  };
}

@QueryHandler(ListSyncJobsQuery)
export class ListSyncJobsHandler implements IQueryHandler<ListSyncJobsQuery, SyncJobRecord[]> {
  constructor(private readonly dataSource: DataSource) {}

  async execute(): Promise<SyncJobRecord[]> {
    return ((await this.dataSource.query(`${SELECT} ORDER BY j.created_at`)) as Row[]).map(record);
  }
}

@QueryHandler(GetSyncJobQuery)
export class GetSyncJobHandler implements IQueryHandler<GetSyncJobQuery, SyncJobRecord> {
  constructor(private readonly dataSource: DataSource) {}

  async execute({ syncJobId }: GetSyncJobQuery): Promise<SyncJobRecord> {
    const [row] = (await this.dataSource.query(`${SELECT} WHERE j.sync_job_id::text = $1`, [syncJobId])) as Row[];
    if (!row) throw new DomainError('not_found', `sync job ${syncJobId} does not exist`);
    return record(row);
  }
}
