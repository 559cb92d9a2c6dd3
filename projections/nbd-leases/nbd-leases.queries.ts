import { Inject } from '@nestjs/common';
import { IQueryHandler, QueryHandler } from '@nestjs/cqrs';
import { DataSource } from 'typeorm';
import { HUB_CONFIG, HubConfig } from '../../src/config/hub-config';
import { ActiveNbdLease, ActiveNbdLeasesQuery } from '../../src/nbd/queries/active-nbd-leases.query';
import { NbdPortMetrics, NbdPortMetricsQuery } from '../../src/nbd/queries/nbd-port-metrics.query';
import { NbdLeaseView } from './nbd-lease.entity';

@QueryHandler(ActiveNbdLeasesQuery)
export class ActiveNbdLeasesHandler implements IQueryHandler<ActiveNbdLeasesQuery, ActiveNbdLease[]> {
  constructor(
    @Inject(HUB_CONFIG) private readonly config: HubConfig,
    private readonly dataSource: DataSource,
  ) {}

  async execute(): Promise<ActiveNbdLease[]> {
    const rows = await this.dataSource.getRepository(NbdLeaseView).find({ where: { host: this.config.hostId, status: 'active' }, order: { port: 'ASC' } });
    return rows.map((r) => ({ port: r.port, leaseId: r.leaseId, jobId: r.jobId, diskId: r.diskId, allocatedAt: r.allocatedAt, allocatedBy: r.allocatedBy }));
  }
}

@QueryHandler(NbdPortMetricsQuery)
export class NbdPortMetricsHandler implements IQueryHandler<NbdPortMetricsQuery, NbdPortMetrics> {
  constructor(
    @Inject(HUB_CONFIG) private readonly config: HubConfig,
    private readonly dataSource: DataSource,
  ) {}

  async execute(): Promise<NbdPortMetrics> {
    const [row] = await this.dataSource.query(
      `SELECT count(*) FILTER (WHERE status = 'active')::int AS allocated, count(*)::int AS allocations, count(*) FILTER (WHERE status = 'released')::int AS releases
       FROM rm_nbd_leases WHERE host = $1`,
      [this.config.hostId],
    );
    const total = this.config.nbdPorts.last - this.config.nbdPorts.first + 1;
    return { total, allocated: row.allocated, available: total - row.allocated, allocationsTotal: row.allocations, releasesTotal: row.releases };
  }
}
