import { Controller, Get, Param, Query } from '@nestjs/common';
import { QueryBus } from '@nestjs/cqrs';
import { ApiBearerAuth, ApiTags } from '@nestjs/swagger';
import { AuditPageQuery, CorrelationIdParams, StreamIdParams } from './audit.dto';
import { CorrelationEventsQuery } from './queries/correlation-events.query';
import { StreamEventsQuery } from './queries/stream-events.query';
import { Access } from '../http/access.guard';

@ApiTags('audit')
@ApiBearerAuth()
@Controller('api/v1/audit')
export class AuditController {
  constructor(private readonly queries: QueryBus) {}

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
