import { Body, Controller, Get, Header, HttpCode, Inject, Param, Post, Query, Res, StreamableFile, UseGuards } from '@nestjs/common';
import { QueryBus } from '@nestjs/cqrs';
import { ApiBearerAuth, ApiTags } from '@nestjs/swagger';
import type { Response } from 'express';
import { EVENT_STORE, EventStore } from '../event-store/event-store.port';
import { DomainError } from '../eventing/domain-error';
import { streamEvents } from '../http/event-stream';
import { CommandGateway } from '../projection-runner/command-gateway';
import { DrillScreenshots } from './adapters/drill-screenshots';
import { PointView } from './adapters/point-view';
import { AgentOwnsRestoreGuard } from './agent-owns-restore.guard';
import { CancelRestoreCommand } from './commands/cancel-restore.command';
import { RecordRestoreReportCommand } from './commands/record-restore-report.command';
import { GetRestoreQuery } from './queries/get-restore.query';
import { ListRestoresQuery } from './queries/list-restores.query';
import { parseRestoreReport } from './restore-report.parse';
import { RESTORE_TERMINAL_EVENTS, restoreStream } from './restore.events';
import { RestoreReader } from './restore.reader';
import { RestoreWorkflow } from './restore.workflow';
import { ListRestoresDto, minimalDefinition, RestoreDiskParams, RestoreIdParams, RestorePointIdParams, restoreResponse, StartDrillDto, StartRestoreDto } from './restores.dto';
import { Access } from '../http/access.guard';
import { AgentCause, ApiAgentCause } from '../http/agent-cause';
import { Owned, TenantScope } from '../http/owned';

const READ_MODEL = 'restores';

/** Whole-VM restores to a hypervisor host through its agent. */
@ApiTags('restores')
@ApiBearerAuth()
@Controller('api/v1')
export class RestoresController {
  constructor(
    private readonly scope: TenantScope,
    private readonly workflow: RestoreWorkflow,
    private readonly gateway: CommandGateway,
    private readonly queries: QueryBus,
    private readonly reader: RestoreReader,
    private readonly view: PointView,
    private readonly screenshots: DrillScreenshots,
    @Inject(EVENT_STORE) private readonly store: EventStore,
  ) {}

  @Access('operate')
  @Owned({ body: { restorePointId: 'point', agentId: 'agent', 'target.vmId': 'vm' } })
  @Post('restores')
  @HttpCode(202)
  start(@Body() body: StartRestoreDto) {
    const t = body.target;
    const target = t.kind === 'replace' ? { kind: 'replace' as const, vmId: t.vmId! } : { kind: 'new-domain' as const, name: t.name!, storageDir: t.storageDir ?? null, start: t.start ?? false };
    return this.workflow.request({ restorePointId: body.restorePointId, agentId: body.agentId, mode: body.mode, target, definition: minimalDefinition(body.definition), force: body.force ?? false });
  }

  /** A recovery drill: the point booted on the agent's host from the hub's export, checked, removed; the verdict is the restore's end. */
  @Access('operate')
  @Owned({ params: { id: 'point' }, body: { agentId: 'agent' } })
  @Post('restore-points/:id/drill')
  @HttpCode(202)
  drill(@Param() { id }: RestorePointIdParams, @Body() body: StartDrillDto) {
    return this.workflow.request({ restorePointId: id, agentId: body.agentId, mode: 'instant', target: { kind: 'drill', timeoutSeconds: body.timeoutSeconds ?? 300 }, definition: minimalDefinition(body.definition), force: false });
  }

  @Access('read')
  @Owned({ params: { restoreId: 'restore' } })
  @Get('restores/:restoreId/screenshot')
  async screenshot(@Param() { restoreId }: RestoreIdParams, @Res({ passthrough: true }) res: Response) {
    const { drill } = await this.queries.execute(new GetRestoreQuery(restoreId));
    if (!drill?.screenshot) throw new DomainError('not_found', `restore ${restoreId} has no screenshot`);
    res.setHeader('Content-Type', drill.screenshot.contentType);
    return new StreamableFile(await this.screenshots.read(drill.screenshot));
  }

  @Access('read')
  @Owned('filtered')
  @Get('restores')
  async list(@Query() { vmId }: ListRestoresDto) {
    return (await this.scope.filter(await this.queries.execute(new ListRestoresQuery({ vmId })), (r) => ({ vmId: r.vmId }))).map(restoreResponse);
  }

  @Access('read')
  @Owned({ params: { restoreId: 'restore' } })
  @Get('restores/:restoreId')
  async get(@Param() { restoreId }: RestoreIdParams) {
    return restoreResponse(await this.queries.execute(new GetRestoreQuery(restoreId)));
  }

  @Access('operate')
  @Owned({ params: { restoreId: 'restore' } })
  @Post('restores/:restoreId/cancel')
  @HttpCode(202)
  async cancel(@Param() { restoreId }: RestoreIdParams) {
    await this.gateway.execute(new CancelRestoreCommand(restoreId), READ_MODEL);
    return { restoreId, cancelRequested: true };
  }

  @Access('read')
  @Owned({ params: { restoreId: 'restore' } })
  @Get('restores/:restoreId/events')
  async events(@Param() { restoreId }: RestoreIdParams, @Res() res: Response) {
    await this.reader.get(restoreId);
    await streamEvents(this.store, restoreStream(restoreId), RESTORE_TERMINAL_EVENTS, res);
  }

  @Access('agent')
  @Owned({ params: { restoreId: 'restore' } })
  @Post('restores/:restoreId/agent-reports')
  @HttpCode(202)
  @UseGuards(AgentOwnsRestoreGuard)
  @ApiAgentCause('RestoreStarted')
  async agentReport(@Param() { restoreId }: RestoreIdParams, @Body() body: Record<string, unknown>, @AgentCause() causationId: string) {
    await this.gateway.execute(new RecordRestoreReportCommand(restoreId, parseRestoreReport(body), causationId), READ_MODEL);
    return { accepted: true };
  }

  /** The point's digests of one disk, each block as the point reads it: what the agent checks every block it writes against. */
  @Access('agent')
  @Owned({ params: { restoreId: 'restore' } })
  @Get('restores/:restoreId/disks/:diskId/digests')
  @Header('Content-Type', 'application/octet-stream')
  @UseGuards(AgentOwnsRestoreGuard)
  async digests(@Param() { restoreId, diskId }: RestoreDiskParams) {
    const state = await this.reader.get(restoreId);
    const digests = await this.view.digests(state.vmId!, state.repositoryId!, state.restorePointId!, diskId);
    if (!digests) throw new DomainError('not_found', `restore point ${state.restorePointId} has no digests of disk ${diskId}`);
    return new StreamableFile(digests.encode());
  }
}
