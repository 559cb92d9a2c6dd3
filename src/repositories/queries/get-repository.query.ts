import { Query } from '@nestjs/cqrs';
import { RepositoryDetails } from './repository-details';

/** 404 when the repository does not exist or was removed. */
export class GetRepositoryQuery extends Query<RepositoryDetails> {
  constructor(readonly repositoryId: string) {
    super();
  }
}
