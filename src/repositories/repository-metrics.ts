import { Inject, Injectable, OnModuleInit } from '@nestjs/common';
import { QueryBus } from '@nestjs/cqrs';
import { Gauge, Registry } from 'prom-client';
import { METRICS_REGISTRY } from '../operations/metrics.registry';
import { ListRepositoriesQuery } from './queries/list-repositories.query';
import { RepositoryDetails } from './queries/repository-details';

type Figure = 'logicalBytes' | 'uniqueBytes' | 'storedBytes' | 'garbageBytes';

/** A chunks repository's saving on /metrics, as last measured (the read model's figures; nothing is read from disk here). */
@Injectable()
export class RepositoryMetrics implements OnModuleInit {
  constructor(
    @Inject(METRICS_REGISTRY) private readonly registry: Registry,
    private readonly queries: QueryBus,
  ) {}

  onModuleInit(): void {
    const chunked = async () => (await this.queries.execute(new ListRepositoriesQuery())).filter((r): r is RepositoryDetails & { chunks: NonNullable<RepositoryDetails['chunks']> } => r.chunks !== null);
    const gauge = (name: string, help: string, figure: Figure) =>
      new Gauge({
        name,
        help,
        labelNames: ['repository'],
        registers: [this.registry],
        async collect() {
          this.reset();
          for (const r of await chunked()) this.set({ repository: r.name }, r.chunks[figure]);
        },
      });
    gauge('sendense_repository_logical_bytes', "Bytes a chunks repository's points protect (blocks that are not zeros, each point whole)", 'logicalBytes');
    gauge('sendense_repository_unique_bytes', "A chunks repository's protected bytes with each distinct block counted once (after deduplication)", 'uniqueBytes');
    gauge('sendense_repository_stored_bytes', "Bytes of every file of a chunks repository's store (after deduplication and compression)", 'storedBytes');
    gauge('sendense_repository_garbage_bytes', 'Stored bytes of chunks no point of a chunks repository names any more (awaiting collection)', 'garbageBytes');
  }
}
