import { Query } from '@nestjs/cqrs';
import { RepositoryDetails } from './repository-details';

/** 404 when the repository does not exist or was removed. `tenantId`: count only that tenant's points (null: every point). */
export class GetRepositoryQuery extends Query<RepositoryDetails> {
  constructor(
    readonly repositoryId: string,
    readonly tenantId: string | null = null,
  ) {
    super();
  }
}
