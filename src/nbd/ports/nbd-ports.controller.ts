import { Body, Controller, Delete, Get, Inject, Param, Post } from '@nestjs/common';
import { CommandBus } from '@nestjs/cqrs';
import { ApiBearerAuth, ApiTags } from '@nestjs/swagger';
import { DataSource } from 'typeorm';
import { NbdLeaseView } from '../../../projections/nbd-leases/nbd-lease.entity';
import { HubConfig, HUB_CONFIG } from '../../config/hub-config';
import { DomainError } from '../../eventing/domain-error';
import { ProjectionsService } from '../../projection-runner/projections.service';
import { NbdExportsService } from '../exports/nbd-exports.service';
import { AllocateNbdPortCommand, ReleaseJobPortsCommand, ReleaseNbdPortCommand } from './nbd-port.commands';
import { Allocated, Released } from './nbd-port.handlers';
import { NbdPortPool } from './nbd-port-pool';
import { AllocatePortDto, JobIdParams, PortParams } from './nbd-ports.dto';

const LEASES = 'nbd-leases';

@ApiTags('nbd')
@ApiBearerAuth()
@Controller('api/v1/nbd/ports')
export class NbdPortsController {
  constructor(
    @Inject(HUB_CONFIG) private readonly config: HubConfig,
    private readonly commands: CommandBus,
    private readonly projections: ProjectionsService,
    private readonly pool: NbdPortPool,
    private readonly exports: NbdExportsService,
    private readonly dataSource: DataSource,
  ) {}

  @Post('allocate')
  async allocate(@Body() body: AllocatePortDto) {
    const lease: Allocated = await this.commands.execute(new AllocateNbdPortCommand(body.jobId, body.diskId));
    await this.projections.waitFor(LEASES, lease.position);
    return { port: lease.port, leaseId: lease.leaseId, jobId: lease.jobId, diskId: lease.diskId };
  }

  @Delete('job/:jobId')
  async releaseJob(@Param() { jobId }: JobIdParams) {
    const leases = Object.values((await this.pool.state()).leases).filter((l) => l.jobId === jobId);
    let position: string | null = null;
    for (const lease of leases) if (this.exports.isRunning(lease.leaseId)) position = await this.exports.stop(lease.leaseId, 'job ports released');
    const result: { ports: number[]; position: string | null } = await this.commands.execute(new ReleaseJobPortsCommand(jobId, 'job ports released'));
    await Promise.all([this.projections.waitFor(LEASES, result.position ?? position), this.projections.waitFor('qemu-nbd-processes', position)]);
    const released = [...new Set([...leases.map((l) => l.port), ...result.ports])].sort((a, b) => a - b);
    return { released };
  }

  @Delete(':port')
  async release(@Param() { port }: PortParams) {
    if (!this.pool.inRange(port)) throw new DomainError('invalid', `port ${port} is outside the NBD port pool ${this.pool.range.first}-${this.pool.range.last}`);
    const lease = (await this.pool.state()).leases[port];
    if (lease && this.exports.isRunning(lease.leaseId)) {
      throw new DomainError('conflict', `port ${port} serves a running export (lease ${lease.leaseId}); stop it with DELETE /api/v1/nbd/exports/${lease.leaseId}`);
    }
    const released: Released = await this.commands.execute(new ReleaseNbdPortCommand(port, 'released by request'));
    await this.projections.waitFor(LEASES, released.position);
    return { port: released.port, leaseId: released.leaseId, jobId: released.jobId };
  }

  @Get()
  async list() {
    const rows = await this.dataSource.getRepository(NbdLeaseView).find({ where: { host: this.config.hostId, status: 'active' }, order: { port: 'ASC' } });
    return rows.map((r) => ({ port: r.port, leaseId: r.leaseId, jobId: r.jobId, diskId: r.diskId, allocatedAt: r.allocatedAt, allocatedBy: r.allocatedBy }));
  }

  @Get('metrics')
  async metrics() {
    const [row] = await this.dataSource.query(
      `SELECT count(*) FILTER (WHERE status = 'active')::int AS allocated, count(*)::int AS allocations, count(*) FILTER (WHERE status = 'released')::int AS releases
       FROM rm_nbd_leases WHERE host = $1`,
      [this.config.hostId],
    );
    const total = this.pool.range.last - this.pool.range.first + 1;
    return { total, allocated: row.allocated, available: total - row.allocated, allocationsTotal: row.allocations, releasesTotal: row.releases };
  }
}
