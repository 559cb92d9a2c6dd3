import { Inject, Injectable } from '@nestjs/common';
import { HUB_CONFIG, HubConfig } from '../../config/hub-config';
import { AggregateRepository } from '../../eventing/aggregate-repository';
import { nbdPortPoolAggregate, PortPoolState } from './nbd-port-pool.aggregate';
import { nbdPortsStream } from './nbd-port.events';

/** This host's pool: its stream, its configured range, and its current state from the events. */
@Injectable()
export class NbdPortPool {
  constructor(
    @Inject(HUB_CONFIG) private readonly config: HubConfig,
    private readonly aggregates: AggregateRepository,
  ) {}

  get stream(): string {
    return nbdPortsStream(this.config.hostId);
  }

  get range(): { first: number; last: number } {
    return this.config.nbdPorts;
  }

  async state(): Promise<PortPoolState> {
    return (await this.aggregates.load(this.stream, nbdPortPoolAggregate)).state;
  }
}
