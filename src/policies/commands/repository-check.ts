import { DomainError } from '../../eventing/domain-error';
import { RepositoriesService } from '../../repositories/registry/repositories.service';
import { PolicyDefinition } from '../policy.events';

/**
 * A policy names a repository in its body: one that does not exist is bad input (400), not a missing resource. An
 * immutable repository removes whole chains only (a merge would rewrite a full), so a policy writing into one must
 * start new chains: without `fullEvery` its first chain would grow for ever and never expire.
 */
export async function assertRepositoryFits(repositories: RepositoriesService, definition: Pick<PolicyDefinition, 'repositoryId' | 'fullEvery'>): Promise<void> {
  const repository = await repositories.definition(definition.repositoryId).catch((error) => {
    throw error instanceof DomainError && error.kind === 'not_found' ? new DomainError('invalid', `repositoryId ${definition.repositoryId}: no such repository`) : error;
  });
  if (repository.immutableDays && !definition.fullEvery) {
    throw new DomainError('invalid', `repository ${repository.name} keeps its restore points immutable for ${repository.immutableDays} day(s) and removes only whole chains: give fullEvery, so that new chains start and old ones can expire`);
  }
}
