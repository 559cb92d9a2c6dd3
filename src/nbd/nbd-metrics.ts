import { Inject, Injectable, OnModuleInit } from '@nestjs/common';
import { Gauge, Registry } from 'prom-client';
import { METRICS_REGISTRY } from '../operations/metrics.registry';
import { NbdExportsService } from './exports/nbd-exports.service';
import { NbdPortPool } from './ports/nbd-port-pool';

@Injectable()
export class NbdMetrics implements OnModuleInit {
  constructor(
    @Inject(METRICS_REGISTRY) private readonly registry: Registry,
    private readonly pool: NbdPortPool,
    private readonly exports: NbdExportsService,
  ) {}

  onModuleInit(): void {
    const { pool, exports } = this;
    new Gauge({
      name: 'sendense_nbd_port_leases_active',
      help: 'NBD ports currently leased on this host',
      registers: [this.registry],
      async collect() {
        this.set(Object.keys((await pool.state()).leases).length);
      },
    });
    new Gauge({
      name: 'sendense_nbd_ports_total',
      help: 'Size of the NBD port pool',
      registers: [this.registry],
      collect() {
        this.set(pool.range.last - pool.range.first + 1);
      },
    });
    new Gauge({
      name: 'sendense_qemu_nbd_processes_live',
      help: 'qemu-nbd processes this hub process is running',
      registers: [this.registry],
      collect() {
        this.set(exports.liveCount());
      },
    });
  }
}
