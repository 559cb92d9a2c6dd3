import { Body, Controller, Get, HttpCode, Param, Post, Query, Res, UseGuards } from '@nestjs/common';
import { QueryBus } from '@nestjs/cqrs';
import { ApiBearerAuth, ApiOkResponse, ApiTags } from '@nestjs/swagger';
import type { Response } from 'express';
import { CommandGateway } from '../projection-runner/command-gateway';
import { AgentOwnsJobGuard } from './agent-owns-job.guard';
import { parseAgentReport } from './agent-report.parse';
import { BackupEventsStream } from './backup-events.stream';
import { BackupJobPageResponse, BackupJobResponse, JobIdParams, ListBackupsQuery, ReportQuery, StartBackupDto } from './backups.dto';
import { CancelBackupCommand } from './commands/cancel-backup.command';
import { RecordAgentReportCommand } from './commands/record-agent-report.command';
import { RequestBackupCommand } from './commands/request-backup.command';
import { BackupJobsReportQuery, jobsPerDay } from './queries/backup-jobs-report.query';
import { GetBackupJobQuery } from './queries/get-backup-job.query';
import { ListBackupJobsQuery } from './queries/list-backup-jobs.query';
import { Access } from '../http/access.guard';
import { Owned, TenantScope } from '../http/owned';
import { AgentCause, ApiAgentCause } from '../http/agent-cause';

const READ_MODEL = 'backup-jobs';

@ApiTags('backups')
@ApiBearerAuth()
@Controller('api/v1')
export class BackupsController {
  constructor(
    private readonly scope: TenantScope,
    private readonly gateway: CommandGateway,
    private readonly queries: QueryBus,
    private readonly events: BackupEventsStream,
  ) {}

  @Access('operate')
  @Owned({ body: { vmId: 'vm', repositoryId: 'repository' } })
  @Post('backups')
  @HttpCode(202)
  async start(@Body() body: StartBackupDto) {
    const { jobId } = await this.gateway.execute(new RequestBackupCommand(body.vmId, body.repositoryId, body.type ?? 'auto'), READ_MODEL);
    return { jobId };
  }

  @Access('operate')
  @Owned({ params: { jobId: 'job' } })
  @Post('backups/:jobId/cancel')
  @HttpCode(202)
  async cancel(@Param() { jobId }: JobIdParams) {
    await this.gateway.execute(new CancelBackupCommand(jobId), READ_MODEL);
    return { jobId, cancelRequested: true };
  }

  @Access('agent')
  @Owned({ params: { jobId: 'job' } })
  @Post('backups/:jobId/agent-reports')
  @HttpCode(202)
  @UseGuards(AgentOwnsJobGuard)
  @ApiAgentCause('SnapshotRequested')
  async agentReport(@Param() { jobId }: JobIdParams, @Body() body: Record<string, unknown>, @AgentCause() causationId: string) {
    await this.gateway.execute(new RecordAgentReportCommand(jobId, parseAgentReport(body), causationId));
    return { accepted: true };
  }

  @Access('read')
  @Owned({ params: { jobId: 'job' } })
  @Get('backups/:jobId')
  @ApiOkResponse({ type: BackupJobResponse })
  get(@Param() { jobId }: JobIdParams) {
    return this.queries.execute(new GetBackupJobQuery(jobId));
  }

  @Access('read')
  @Owned('filtered')
  @Get('backups')
  @ApiOkResponse({ type: BackupJobPageResponse })
  async list(@Query() q: ListBackupsQuery) {
    const page = await this.queries.execute(new ListBackupJobsQuery(q));
    return { ...page, jobs: await this.scope.filter(page.jobs, (j) => ({ vmId: j.vmId })) };
  }

  @Access('read')
  @Owned({ params: { jobId: 'job' } })
  @Get('backups/:jobId/events')
  stream(@Param() { jobId }: JobIdParams, @Res() res: Response) {
    return this.events.stream(jobId, res);
  }

  @Access('read')
  @Owned('filtered')
  @Get('reports/jobs')
  async report(@Query() { from, to, timezone }: ReportQuery) {
    const report = await this.queries.execute(new BackupJobsReportQuery(from, to, timezone ?? 'UTC'));
    const vms = await this.scope.filter(report.vms, (v) => ({ vmId: v.vmId }));
    return { ...report, vms, days: jobsPerDay(vms) };
  }
}
