import { Injectable } from '@nestjs/common';
import { AggregateRepository } from '../../eventing/aggregate-repository';
import { DomainError } from '../../eventing/domain-error';
import { measureCapacity } from '../adapters/capacity';
import { repositoryAggregate } from './repository.aggregate';
import { Capacity, RepositoryDefinition, repositoryStream } from './repository.events';

/** What other features ask about a repository: where it is, and how much room it has now. */
@Injectable()
export class RepositoriesService {
  constructor(private readonly aggregates: AggregateRepository) {}

  /** The definition as the events say, for an active repository; 404 otherwise. */
  async definition(repositoryId: string): Promise<RepositoryDefinition> {
    const { state } = await this.aggregates.load(repositoryStream(repositoryId), repositoryAggregate);
    if (state.status !== 'active' || !state.definition) throw new DomainError('not_found', `repository ${repositoryId} does not exist`);
    return state.definition;
  }

  async capacity(repositoryId: string): Promise<Capacity> {
    return measureCapacity((await this.definition(repositoryId)).root);
  }
}
