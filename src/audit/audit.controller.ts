import { BadRequestException, Controller, Get, Param, Query } from '@nestjs/common';
import { QueryBus } from '@nestjs/cqrs';
import { ApiBearerAuth, ApiTags } from '@nestjs/swagger';
import { AuditPageQuery, CorrelationIdParams, SearchEventsQueryDto, StreamIdParams } from './audit.dto';
import { SearchEventsQuery } from './queries/search-events.query';
import { CorrelationEventsQuery } from './queries/correlation-events.query';
import { StreamEventsQuery } from './queries/stream-events.query';
import { Access } from '../http/access.guard';

@ApiTags('audit')
@ApiBearerAuth()
@Controller('api/v1/audit')
export class AuditController {
  constructor(private readonly queries: QueryBus) {}

  /** Pages in global order: pass `next` as `after` for the following page (null on the last). */
  @Access('read')
  @Get('events')
  async search(@Query() q: SearchEventsQueryDto) {
    const from = q.from ? new Date(q.from) : undefined;
    const to = q.to ? new Date(q.to) : undefined;
    if (from && to && from >= to) throw new BadRequestException('from must be before to');
    const limit = q.limit ?? 100;
    const filter = { eventTypes: q.type ? [q.type] : undefined, streamPrefixes: q.streamPrefix ? [q.streamPrefix] : undefined };
    const events = await this.queries.execute(new SearchEventsQuery({ filter, actor: q.actor, from, to, after: q.after ?? null, maxCount: limit }));
    return { events, next: events.length === limit ? events[events.length - 1].position : null };
  }

  @Access('read')
  @Get('streams/:streamId')
  async stream(@Param() { streamId }: StreamIdParams, @Query() page: AuditPageQuery) {
    return { streamId, events: await this.queries.execute(new StreamEventsQuery(streamId, page.fromRevision ?? 0, page.limit ?? 500)) };
  }

  @Access('read')
  @Get('correlations/:correlationId')
  async correlation(@Param() { correlationId }: CorrelationIdParams, @Query() page: AuditPageQuery) {
    return { correlationId, events: await this.queries.execute(new CorrelationEventsQuery(correlationId, page.limit ?? 1000)) };
  }
}
