import { Inject, Injectable, OnModuleInit } from '@nestjs/common';
import { Gauge, Registry } from 'prom-client';
import { METRICS_REGISTRY } from '../operations/metrics.registry';
import { LiveMounts } from './live-mounts';

@Injectable()
export class RestoreMetrics implements OnModuleInit {
  constructor(
    @Inject(METRICS_REGISTRY) private readonly registry: Registry,
    private readonly mounts: LiveMounts,
  ) {}

  onModuleInit(): void {
    const { mounts } = this;
    new Gauge({
      name: 'sendense_restore_mounts_active',
      help: 'Restore mounts (being mounted or ready) this hub process holds',
      registers: [this.registry],
      collect() {
        this.set(mounts.all().length);
      },
    });
  }
}
