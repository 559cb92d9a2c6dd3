import { Controller, Get, NotFoundException, Param, Query } from '@nestjs/common';
import { ApiBearerAuth, ApiTags } from '@nestjs/swagger';
import { AuditPageQuery, CorrelationIdParams, StreamIdParams } from './audit.dto';
import { AuditService } from './audit.service';

@ApiTags('audit')
@ApiBearerAuth()
@Controller('api/v1/audit')
export class AuditController {
  constructor(private readonly audit: AuditService) {}

  @Get('streams/:streamId')
  async stream(@Param() { streamId }: StreamIdParams, @Query() page: AuditPageQuery) {
    const events = await this.audit.stream(streamId, page.fromRevision ?? 0, page.limit ?? 500);
    if (events.length === 0 && !page.fromRevision) throw new NotFoundException(`stream ${streamId} has no events`);
    return { streamId, events };
  }

  @Get('correlations/:correlationId')
  async correlation(@Param() { correlationId }: CorrelationIdParams, @Query() page: AuditPageQuery) {
    const events = await this.audit.correlation(correlationId, page.limit ?? 1000);
    if (events.length === 0) throw new NotFoundException(`no events carry correlation id ${correlationId}`);
    return { correlationId, events };
  }
}
