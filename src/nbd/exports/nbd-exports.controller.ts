import { Body, Controller, Delete, Get, Param, Post } from '@nestjs/common';
import { QueryBus } from '@nestjs/cqrs';
import { ApiBearerAuth, ApiTags } from '@nestjs/swagger';
import { QemuNbdProcessesQuery } from '../queries/qemu-nbd-processes.query';
import { LeaseIdParams, StartExportDto } from './nbd-exports.dto';
import { NbdExportsService } from './nbd-exports.service';
import { Access } from '../../http/access.guard';
import { Owned } from '../../http/owned';

@ApiTags('nbd')
@ApiBearerAuth()
@Controller('api/v1/nbd')
export class NbdExportsController {
  constructor(
    /** Starting and stopping qemu-nbd are side effects: only the exports workflow performs them. */
    private readonly exports: NbdExportsService,
    private readonly queries: QueryBus,
  ) {}

  @Access('admin')
  @Owned('global')
  @Post('exports')
  start(@Body() body: StartExportDto) {
    return this.exports.startAndShow({ ...body, format: body.format ?? 'qcow2', readOnly: body.readOnly ?? false, bitmap: body.bitmap ?? null });
  }

  @Access('admin')
  @Owned('global')
  @Delete('exports/:leaseId')
  async stop(@Param() { leaseId }: LeaseIdParams) {
    await this.exports.stopAndShow(leaseId);
    return { leaseId, stopped: true };
  }

  @Access('read')
  @Owned('global')
  @Get('processes')
  processes() {
    return this.queries.execute(new QemuNbdProcessesQuery());
  }
}
