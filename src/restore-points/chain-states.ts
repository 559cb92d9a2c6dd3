import { Injectable } from '@nestjs/common';
import { AggregateRepository } from '../eventing/aggregate-repository';
import { chainAggregate, ChainState } from './chain.aggregate';
import { chainStream } from './chain.events';

/** A chain as its events say right now: what workflows read before they act on its files. */
@Injectable()
export class ChainStates {
  constructor(private readonly aggregates: AggregateRepository) {}

  async load(vmId: string, repositoryId: string): Promise<ChainState> {
    return (await this.aggregates.load(chainStream(vmId, repositoryId), chainAggregate)).state;
  }
}
