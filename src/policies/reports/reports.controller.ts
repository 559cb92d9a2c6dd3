import { Controller, Get, Query } from '@nestjs/common';
import { QueryBus } from '@nestjs/cqrs';
import { ApiBearerAuth, ApiTags } from '@nestjs/swagger';
import { ProtectionReportQuery } from './queries/protection-report.query';
import { ProtectionReportParams } from './reports.dto';
import { Access } from '../../http/access.guard';

@ApiTags('reports')
@ApiBearerAuth()
@Controller('api/v1/reports')
export class ReportsController {
  constructor(private readonly queries: QueryBus) {}

  @Access('read')
  @Get('protection')
  protection(@Query() { at }: ProtectionReportParams) {
    return this.queries.execute(new ProtectionReportQuery(at ? new Date(at) : null, new Date()));
  }
}
