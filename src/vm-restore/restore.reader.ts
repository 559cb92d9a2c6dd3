import { Injectable } from '@nestjs/common';
import { AggregateRepository } from '../eventing/aggregate-repository';
import { DomainError } from '../eventing/domain-error';
import { restoreAggregate, RestoreState } from './restore.aggregate';
import { restoreStream } from './restore.events';

/** A restore's state as its own stream says it now (no read-model lag), for the workflow and the guards; never written here. */
@Injectable()
export class RestoreReader {
  constructor(private readonly aggregates: AggregateRepository) {}

  async get(restoreId: string): Promise<RestoreState> {
    const { state } = await this.aggregates.load(restoreStream(restoreId), restoreAggregate);
    if (!state.restoreId) throw new DomainError('not_found', `restore ${restoreId} does not exist`);
    return state;
  }
}
