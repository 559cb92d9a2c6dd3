import { Body, Controller, Delete, Get, Param, Post } from '@nestjs/common';
import { QueryBus } from '@nestjs/cqrs';
import { ApiBearerAuth, ApiTags } from '@nestjs/swagger';
import { CommandGateway } from '../../projection-runner/command-gateway';
import { NbdExportsService } from '../exports/nbd-exports.service';
import { ActiveNbdLeasesQuery } from '../queries/active-nbd-leases.query';
import { NbdPortMetricsQuery } from '../queries/nbd-port-metrics.query';
import { AllocateNbdPortCommand } from './commands/allocate-nbd-port.command';
import { ReleaseNbdPortCommand } from './commands/release-nbd-port.command';
import { AllocatePortDto, JobIdParams, PortParams } from './nbd-ports.dto';
import { Access } from '../../http/access.guard';
import { Owned } from '../../http/owned';

const LEASES = 'nbd-leases';

@ApiTags('nbd')
@ApiBearerAuth()
@Controller('api/v1/nbd/ports')
export class NbdPortsController {
  constructor(
    private readonly gateway: CommandGateway,
    private readonly queries: QueryBus,
    /** Releasing a job's ports stops the qemu-nbd processes on them first: a side effect only the exports workflow performs. */
    private readonly exports: NbdExportsService,
  ) {}

  @Access('admin')
  @Owned('global')
  @Post('allocate')
  async allocate(@Body() body: AllocatePortDto) {
    const { port, leaseId, jobId, diskId } = await this.gateway.execute(new AllocateNbdPortCommand(body.jobId, body.diskId), LEASES);
    return { port, leaseId, jobId, diskId };
  }

  @Access('admin')
  @Owned('global')
  @Delete('job/:jobId')
  releaseJob(@Param() { jobId }: JobIdParams) {
    return this.exports.releaseJob(jobId);
  }

  @Access('admin')
  @Owned('global')
  @Delete(':port')
  release(@Param() { port }: PortParams) {
    return this.gateway.execute(new ReleaseNbdPortCommand(port, 'released by request'), LEASES);
  }

  @Access('read')
  @Owned('global')
  @Get()
  list() {
    return this.queries.execute(new ActiveNbdLeasesQuery());
  }

  @Access('read')
  @Owned('global')
  @Get('metrics')
  metrics() {
    return this.queries.execute(new NbdPortMetricsQuery());
  }
}
