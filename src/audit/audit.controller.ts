import { BadRequestException, Controller, Get, Param, Query } from '@nestjs/common';
import { QueryBus } from '@nestjs/cqrs';
import { ApiBearerAuth, ApiTags } from '@nestjs/swagger';
import { AuditPageQuery, CorrelationIdParams, SearchEventsQueryDto, StreamIdParams } from './audit.dto';
import { SearchEventsQuery } from './queries/search-events.query';
import { CorrelationEventsQuery } from './queries/correlation-events.query';
import { StreamEventsQuery } from './queries/stream-events.query';
import { Access } from '../http/access.guard';
import { Owned, TenantScope } from '../http/owned';
import { notFound } from '../http/not-found';
import { currentContext } from '../eventing/request-context';
import { AuditEvent, redactSecrets } from './audit-event';

@ApiTags('audit')
@ApiBearerAuth()
@Controller('api/v1/audit')
export class AuditController {
  constructor(
    private readonly queries: QueryBus,
    private readonly scope: TenantScope,
  ) {}

  /** A tenant's token reads the events of what its tenant owns, nothing else; only an admin token reads hashes and secrets in them. */
  private async visible(events: AuditEvent[]): Promise<AuditEvent[]> {
    const seen = new Map<string, boolean>();
    const keep: AuditEvent[] = [];
    for (const e of events) if (await this.scope.eventVisible(e, seen)) keep.push(e);
    return this.redacted(keep);
  }

  private redacted(events: AuditEvent[]): AuditEvent[] {
    return currentContext().role === 'admin' ? events : events.map(redactSecrets);
  }

  /** Pages in global order: pass `next` as `after` for the following page (null on the last). */
  @Access('read')
  @Owned('filtered')
  @Get('events')
  async search(@Query() q: SearchEventsQueryDto) {
    const from = q.from ? new Date(q.from) : undefined;
    const to = q.to ? new Date(q.to) : undefined;
    if (from && to && from >= to) throw new BadRequestException('from must be before to');
    const limit = q.limit ?? 100;
    const filter = { eventTypes: q.type ? [q.type] : undefined, streamPrefixes: q.streamPrefix ? [q.streamPrefix] : undefined };
    const events = await this.queries.execute(new SearchEventsQuery({ filter, actor: q.actor, vmId: q.vmId, from, to, after: q.after ?? null, maxCount: limit }, q.jobId));
    // paging goes by what the store returned, so a page a tenant's token sees shortened by others' events still leads on
    return { events: await this.visible(events), next: events.length === limit ? events[events.length - 1].position : null };
  }

  @Access('read')
  @Owned('filtered')
  @Get('streams/:streamId')
  async stream(@Param() { streamId }: StreamIdParams, @Query() page: AuditPageQuery) {
    // the same error as the query's for a stream without events
    if (!(await this.scope.streamVisible(streamId))) throw notFound(`stream ${streamId} has no events`);
    return { streamId, events: this.redacted(await this.queries.execute(new StreamEventsQuery(streamId, page.fromRevision ?? 0, page.limit ?? 500))) };
  }

  @Access('read')
  @Owned('filtered')
  @Get('correlations/:correlationId')
  async correlation(@Param() { correlationId }: CorrelationIdParams, @Query() page: AuditPageQuery) {
    const events = await this.visible(await this.queries.execute(new CorrelationEventsQuery(correlationId, page.limit ?? 1000)));
    // the same error as the query's for an id no event carries
    if (events.length === 0) throw notFound(`no events carry correlation id ${correlationId}`);
    return { correlationId, events };
  }
}
