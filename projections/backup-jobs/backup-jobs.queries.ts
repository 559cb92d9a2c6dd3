import { IQueryHandler, QueryHandler } from '@nestjs/cqrs';
import { DataSource, EntityManager, In } from 'typeorm';
import { BackupJobsReport, BackupJobsReportQuery } from '../../src/backups/queries/backup-jobs-report.query';
import { BackupJobDto, GetBackupJobQuery } from '../../src/backups/queries/get-backup-job.query';
import { BackupJobPage, ListBackupJobsQuery } from '../../src/backups/queries/list-backup-jobs.query';
import { UnfinishedBackupJobsQuery } from '../../src/backups/queries/unfinished-backup-jobs.query';
import { DomainError } from '../../src/eventing/domain-error';
import { UUID_PATTERN } from '../../src/wire/identifiers';
import { BackupJobView } from './backup-job.entity';

@QueryHandler(GetBackupJobQuery)
export class GetBackupJobHandler implements IQueryHandler<GetBackupJobQuery, BackupJobDto> {
  constructor(private readonly dataSource: DataSource) {}

  execute({ jobId }: GetBackupJobQuery): Promise<BackupJobDto & AsOf> {
    return asOfOneSnapshot(this.dataSource, async (manager) => {
      const job = await manager.getRepository(BackupJobView).findOneBy({ jobId });
      if (!job) throw new DomainError('not_found', `backup job ${jobId} does not exist`);
      return describe(job);
    });
  }
}

@QueryHandler(ListBackupJobsQuery)
export class ListBackupJobsHandler implements IQueryHandler<ListBackupJobsQuery, BackupJobPage> {
  constructor(private readonly dataSource: DataSource) {}

  execute({ filter }: ListBackupJobsQuery): Promise<BackupJobPage & AsOf> {
    return asOfOneSnapshot(this.dataSource, (manager) => this.page(manager, filter));
  }

  private async page(manager: EntityManager, filter: ListBackupJobsQuery['filter']): Promise<BackupJobPage> {
    const limit = filter.limit ?? 50;
    const params: unknown[] = [];
    const where: string[] = [];
    if (filter.vmId) where.push(`vm_id = $${params.push(filter.vmId)}`);
    if (filter.status) where.push(`phase = $${params.push(filter.status)}`);
    if (filter.cursor) {
      const [at, id] = decodeCursor(filter.cursor);
      where.push(`(requested_at, job_id) < ($${params.push(at)}::timestamptz, $${params.push(id)}::uuid)`);
    }
    const rows: { job_id: string }[] = await manager.query(
      `SELECT job_id FROM rm_backup_jobs ${where.length ? `WHERE ${where.join(' AND ')}` : ''} ORDER BY requested_at DESC, job_id DESC LIMIT ${limit + 1}`,
      params,
    );
    // one read of the page's rows, not one per row: 51 queries per page held the list at ~80 ms while a fleet ran (bench fleet)
    const ids = rows.slice(0, limit).map((r) => r.job_id);
    const found = new Map((await manager.getRepository(BackupJobView).findBy({ jobId: In(ids) })).map((j) => [j.jobId, j]));
    const jobs = ids.map((id) => found.get(id)!);
    const last = jobs.at(-1);
    return { jobs: jobs.map(describe), nextCursor: rows.length > limit && last ? encodeCursor(last.requestedAt, last.jobId) : null };
  }
}

@QueryHandler(BackupJobsReportQuery)
export class BackupJobsReportHandler implements IQueryHandler<BackupJobsReportQuery, BackupJobsReport> {
  constructor(private readonly dataSource: DataSource) {}

  async execute({ from, to, timezone }: BackupJobsReportQuery): Promise<BackupJobsReport> {
    // the DTO checks the zone against node's list, which holds names PostgreSQL's lacks (AET, BET, MIT…): a 500 in the query below
    await this.dataSource.query(`SELECT now() AT TIME ZONE $1`, [timezone]).catch((error: { code?: string }) => {
      throw error.code === '22023' ? new DomainError('invalid', `timezone ${JSON.stringify(timezone)} is not one the database knows: use an IANA name such as Europe/Berlin`) : error;
    });
    const perDay: { vmId: string; day: string; successes: number; failures: number }[] = await this.dataSource.query(
      `SELECT vm_id AS "vmId", to_char(finished_at AT TIME ZONE $3, 'YYYY-MM-DD') AS day,
              count(*) FILTER (WHERE outcome = 'completed')::int AS successes,
              count(*) FILTER (WHERE outcome = 'failed')::int AS failures
       FROM rm_backup_outcomes WHERE finished_at >= $1 AND finished_at < $2 GROUP BY 1, 2 ORDER BY 1, 2`,
      [from, to, timezone],
    );
    const daysOf = new Map<string, BackupJobsReport['vms'][number]['days']>();
    for (const { vmId, ...day } of perDay) daysOf.set(vmId, [...(daysOf.get(vmId) ?? []), day]);
    const rows: Record<string, string>[] = await this.dataSource.query(
      `SELECT vm_id AS "vmId",
              count(*) FILTER (WHERE outcome = 'completed')::int AS successes,
              count(*) FILTER (WHERE outcome = 'failed')::int AS failures,
              coalesce(sum(bytes) FILTER (WHERE outcome = 'completed'), 0)::text AS bytes,
              coalesce(avg(duration_ms), 0)::bigint::text AS "averageDurationMs",
              coalesce(max(duration_ms), 0)::text AS "longestDurationMs"
       FROM rm_backup_outcomes WHERE finished_at >= $1 AND finished_at < $2 GROUP BY vm_id ORDER BY vm_id`,
      [from, to],
    );
    const vms = rows.map((r) => ({ ...r, bytes: Number(r.bytes), averageDurationMs: Number(r.averageDurationMs), longestDurationMs: Number(r.longestDurationMs), days: daysOf.get(r.vmId) ?? [] }));
    return { from, to, timezone, vms: vms as unknown as BackupJobsReport['vms'] };
  }
}

@QueryHandler(UnfinishedBackupJobsQuery)
export class UnfinishedBackupJobsHandler implements IQueryHandler<UnfinishedBackupJobsQuery, { jobId: string; phase: string }[]> {
  constructor(private readonly dataSource: DataSource) {}

  async execute({ vmId }: UnfinishedBackupJobsQuery): Promise<{ jobId: string; phase: string }[]> {
    return this.dataSource.query(
      `SELECT job_id AS "jobId", phase FROM rm_backup_jobs WHERE phase NOT IN ('completed', 'failed') AND ($1::text IS NULL OR vm_id = $1) ORDER BY requested_at`,
      [vmId],
    );
  }
}

/** `asOf`: the position of the last event the answer reflects, so a client following the live stream applies only later ones. */
interface AsOf {
  asOf: string | null;
}

/** The rows and the projection's checkpoint from one snapshot: the projector moves both in one transaction. */
function asOfOneSnapshot<T extends object>(dataSource: DataSource, read: (manager: EntityManager) => Promise<T>): Promise<T & AsOf> {
  return dataSource.transaction('REPEATABLE READ', async (manager) => {
    const [checkpoint] = await manager.query(`SELECT position FROM projection_checkpoints WHERE name = 'backup-jobs'`);
    return { ...(await read(manager)), asOf: checkpoint?.position ?? null };
  });
}

function describe(j: BackupJobView): BackupJobDto {
  return {
    jobId: j.jobId,
    vmId: j.vmId,
    agentId: j.agentId,
    repositoryId: j.repositoryId,
    status: j.phase === 'completed' || j.phase === 'failed' ? j.phase : j.phase === 'queued' ? 'queued' : 'running',
    phase: j.phase,
    requestedType: j.requestedType,
    type: j.type,
    typeReason: j.typeReason,
    restorePointId: j.restorePointId,
    disks: j.disks,
    disksLeftOut: j.disksLeftOut,
    bytesWritten: Number(j.bytesWritten),
    error: j.error,
    failedPhase: j.failedPhase,
    cancelRequested: j.cancelRequested,
    requestedAt: j.requestedAt,
    startedAt: j.startedAt,
    finishedAt: j.finishedAt,
  };
}

function encodeCursor(at: Date, id: string): string {
  return Buffer.from(`${at.toISOString()}|${id}`).toString('base64url');
}

function decodeCursor(cursor: string): [string, string] {
  const [at, id, ...rest] = Buffer.from(cursor, 'base64url').toString('utf8').split('|');
  // exactly what encodeCursor writes: anything else reached PostgreSQL's ::timestamptz and ::uuid casts, a 500
  const instant = /^\d{4}-\d{2}-\d{2}T\d{2}:\d{2}:\d{2}\.\d{3}Z$/.test(at ?? '') ? new Date(at) : null;
  if (rest.length || !instant || instant.toISOString() !== at || !UUID_PATTERN.test(id ?? '')) throw new DomainError('invalid', 'cursor is malformed');
  return [at, id];
}
