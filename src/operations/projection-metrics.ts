import { Inject, Injectable, OnModuleInit } from '@nestjs/common';
import { Gauge, Registry } from 'prom-client';
import { ProjectionsService } from '../projection-runner/projections.service';
import { METRICS_REGISTRY } from './metrics.registry';

/** Lag is measured when Prometheus scrapes, so it is never older than the scrape itself. */
@Injectable()
export class ProjectionMetrics implements OnModuleInit {
  constructor(
    @Inject(METRICS_REGISTRY) private readonly registry: Registry,
    private readonly projections: ProjectionsService,
  ) {}

  onModuleInit(): void {
    const projections = this.projections;
    new Gauge({
      name: 'sendense_projection_lag_events',
      help: 'Events in the store that a projection has not applied yet',
      labelNames: ['projection'],
      registers: [this.registry],
      async collect() {
        this.reset();
        for (const p of await projections.list()) if (p.lag !== null) this.set({ projection: p.name }, p.lag);
      },
    });
    new Gauge({
      name: 'sendense_projection_leader',
      help: '1 when this hub process is the one applying events for the projection',
      labelNames: ['projection'],
      registers: [this.registry],
      collect() {
        this.reset();
        for (const p of projections.leadership()) this.set({ projection: p.name }, p.leader ? 1 : 0);
      },
    });
  }
}
