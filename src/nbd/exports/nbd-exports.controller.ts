import { Body, Controller, Delete, Get, Param, Post } from '@nestjs/common';
import { ApiBearerAuth, ApiTags } from '@nestjs/swagger';
import { DataSource } from 'typeorm';
import { QemuNbdProcessView } from '../../../projections/qemu-nbd-processes/qemu-nbd-process.entity';
import { ProjectionsService } from '../../projection-runner/projections.service';
import { LeaseIdParams, StartExportDto } from './nbd-exports.dto';
import { NbdExportsService } from './nbd-exports.service';

@ApiTags('nbd')
@ApiBearerAuth()
@Controller('api/v1/nbd')
export class NbdExportsController {
  constructor(
    private readonly exports: NbdExportsService,
    private readonly projections: ProjectionsService,
    private readonly dataSource: DataSource,
  ) {}

  @Post('exports')
  async start(@Body() body: StartExportDto) {
    const started = await this.exports.start({ ...body, format: body.format ?? 'qcow2', readOnly: body.readOnly ?? false, bitmap: body.bitmap ?? null }).catch(async (error) => {
      // A failed start still recorded events (lease, failure, release); let the read models show them.
      await Promise.all([this.projections.waitForCaughtUp('qemu-nbd-processes'), this.projections.waitForCaughtUp('nbd-leases')]);
      throw error;
    });
    await this.projections.waitFor('qemu-nbd-processes', started.position);
    return { leaseId: started.leaseId, port: started.port, exportName: started.exportName, pid: started.pid };
  }

  @Delete('exports/:leaseId')
  async stop(@Param() { leaseId }: LeaseIdParams) {
    const position = await this.exports.stop(leaseId);
    await Promise.all([this.projections.waitFor('qemu-nbd-processes', position), this.projections.waitFor('nbd-leases', position)]);
    return { leaseId, stopped: true };
  }

  @Get('processes')
  async processes() {
    const rows = await this.dataSource.getRepository(QemuNbdProcessView).find({ order: { requestedAt: 'ASC' } });
    return rows.map((r) => ({
      leaseId: r.leaseId,
      port: r.port,
      pid: r.pid,
      file: r.file,
      exportName: r.exportName,
      jobId: r.jobId,
      diskId: r.diskId,
      state: r.state,
      exitCode: r.exitCode,
      signal: r.signal,
      error: r.error,
      startedAt: r.startedAt,
      endedAt: r.endedAt,
    }));
  }
}
