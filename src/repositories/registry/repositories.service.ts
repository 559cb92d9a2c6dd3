import { Injectable } from '@nestjs/common';
import { AggregateRepository } from '../../eventing/aggregate-repository';
import { DomainError } from '../../eventing/domain-error';
import { imageKeys } from '../../qemu/image-keys';
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
    const { encryption, root, name } = state.definition;
    // every operation on a repository's files loads its definition first, so each hub sharing the event store knows the key of one registered elsewhere
    if (encryption) imageKeys.register({ root, name, ...encryption });
    return state.definition;
  }

  /**
   * The definition of a repository whose files this hub can open: an encrypted one's key file must be there and be
   * the recorded key, or the operation is refused (409) before it changes anything.
   */
  async usable(repositoryId: string): Promise<RepositoryDefinition> {
    const definition = await this.definition(repositoryId);
    if (definition.encryption) imageKeys.keyFileForRoot(definition.root);
    return definition;
  }

  async capacity(repositoryId: string): Promise<Capacity> {
    return measureCapacity((await this.definition(repositoryId)).root);
  }
}
