import { DomainError } from '../../eventing/domain-error';
import { RepositoriesService } from '../../repositories/registry/repositories.service';

/** A policy names a repository in its body: one that does not exist is bad input (400), not a missing resource. */
export async function assertRepositoryExists(repositories: RepositoriesService, repositoryId: string): Promise<void> {
  await repositories.definition(repositoryId).catch((error) => {
    throw error instanceof DomainError && error.kind === 'not_found' ? new DomainError('invalid', `repositoryId ${repositoryId}: no such repository`) : error;
  });
}
