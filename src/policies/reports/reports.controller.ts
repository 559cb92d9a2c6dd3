import { Controller, Get, Query } from '@nestjs/common';
import { QueryBus } from '@nestjs/cqrs';
import { ApiBearerAuth, ApiTags } from '@nestjs/swagger';
import { ProtectionReportQuery } from './queries/protection-report.query';
import { ProtectionReportParams } from './reports.dto';
import { Access } from '../../http/access.guard';
import { Owned, TenantScope } from '../../http/owned';

@ApiTags('reports')
@ApiBearerAuth()
@Controller('api/v1/reports')
export class ReportsController {
  constructor(
    private readonly scope: TenantScope,private readonly queries: QueryBus) {}

  @Access('read')
  @Owned('filtered')
  @Get('protection')
  async protection(@Query() { at }: ProtectionReportParams) {
    const report = await this.queries.execute(new ProtectionReportQuery(at ? new Date(at) : null, new Date()));
    return { ...report, vms: await this.scope.filter(report.vms, (v) => ({ vmId: v.vmId })) };
  }
}
