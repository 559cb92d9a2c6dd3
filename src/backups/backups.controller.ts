import { Body, Controller, Get, HttpCode, Param, Post, Query, Res } from '@nestjs/common';
import { ApiBearerAuth, ApiTags } from '@nestjs/swagger';
import type { Response } from 'express';
import { DataSource } from 'typeorm';
import { BackupJobView } from '../../projections/backup-jobs/backup-job.entity';
import { DomainError } from '../eventing/domain-error';
import { ProjectionsService } from '../projection-runner/projections.service';
import { parseAgentReport } from './agent-report.parse';
import { BackupEventsStream } from './backup-events.stream';
import { JobIdParams, ListBackupsQuery, ReportQuery, StartBackupDto } from './backups.dto';
import { BackupsService } from './backups.service';

const READ_MODEL = 'backup-jobs';

@ApiTags('backups')
@ApiBearerAuth()
@Controller('api/v1')
export class BackupsController {
  constructor(
    private readonly backups: BackupsService,
    private readonly projections: ProjectionsService,
    private readonly dataSource: DataSource,
    private readonly events: BackupEventsStream,
  ) {}

  @Post('backups')
  @HttpCode(202)
  async start(@Body() body: StartBackupDto) {
    const { jobId, position } = await this.backups.request(body.vmId, body.repositoryId, body.type ?? 'auto');
    await this.projections.waitFor(READ_MODEL, position);
    return { jobId };
  }

  @Post('backups/:jobId/cancel')
  @HttpCode(202)
  async cancel(@Param() { jobId }: JobIdParams) {
    const position = await this.backups.cancel(jobId);
    await this.projections.waitFor(READ_MODEL, position);
    return { jobId, cancelRequested: true };
  }

  @Post('backups/:jobId/agent-reports')
  @HttpCode(202)
  async agentReport(@Param() { jobId }: JobIdParams, @Body() body: Record<string, unknown>) {
    await this.backups.agentReport(jobId, parseAgentReport(body));
    return { accepted: true };
  }

  @Get('backups/:jobId')
  async get(@Param() { jobId }: JobIdParams) {
    const job = await this.dataSource.getRepository(BackupJobView).findOneBy({ jobId });
    if (!job) throw new DomainError('not_found', `backup job ${jobId} does not exist`);
    return describe(job);
  }

  @Get('backups')
  async list(@Query() q: ListBackupsQuery) {
    const limit = q.limit ?? 50;
    const params: unknown[] = [];
    const where: string[] = [];
    if (q.vmId) where.push(`vm_id = $${params.push(q.vmId)}`);
    if (q.status) where.push(`phase = $${params.push(q.status)}`);
    if (q.cursor) {
      const [at, id] = decodeCursor(q.cursor);
      where.push(`(requested_at, job_id) < ($${params.push(at)}::timestamptz, $${params.push(id)}::uuid)`);
    }
    const rows: { job_id: string }[] = await this.dataSource.query(
      `SELECT job_id FROM rm_backup_jobs ${where.length ? `WHERE ${where.join(' AND ')}` : ''} ORDER BY requested_at DESC, job_id DESC LIMIT ${limit + 1}`,
      params,
    );
    const jobs = await Promise.all(rows.slice(0, limit).map((r) => this.dataSource.getRepository(BackupJobView).findOneByOrFail({ jobId: r.job_id })));
    const last = jobs.at(-1);
    return { jobs: jobs.map(describe), nextCursor: rows.length > limit && last ? encodeCursor(last.requestedAt, last.jobId) : null };
  }

  @Get('backups/:jobId/events')
  async stream(@Param() { jobId }: JobIdParams, @Res() res: Response) {
    await this.backups.job(jobId);
    await this.events.stream(jobId, res);
  }

  @Get('reports/jobs')
  async report(@Query() { from, to }: ReportQuery) {
    const rows = await this.dataSource.query(
      `SELECT vm_id AS "vmId",
              count(*) FILTER (WHERE outcome = 'completed')::int AS successes,
              count(*) FILTER (WHERE outcome = 'failed')::int AS failures,
              coalesce(sum(bytes) FILTER (WHERE outcome = 'completed'), 0)::text AS bytes,
              coalesce(avg(duration_ms), 0)::bigint::text AS "averageDurationMs",
              coalesce(max(duration_ms), 0)::text AS "longestDurationMs"
       FROM rm_backup_outcomes WHERE finished_at >= $1 AND finished_at < $2 GROUP BY vm_id ORDER BY vm_id`,
      [from, to],
    );
    return { from, to, vms: rows.map((r: Record<string, string>) => ({ ...r, bytes: Number(r.bytes), averageDurationMs: Number(r.averageDurationMs), longestDurationMs: Number(r.longestDurationMs) })) };
  }
}

function describe(j: BackupJobView) {
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
  const [at, id] = Buffer.from(cursor, 'base64url').toString('utf8').split('|');
  if (!at || !id || Number.isNaN(Date.parse(at)) || !/^[0-9a-f-]{36}$/.test(id)) throw new DomainError('invalid', 'cursor is malformed');
  return [at, id];
}
