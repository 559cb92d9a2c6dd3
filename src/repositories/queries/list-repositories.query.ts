import { Query } from '@nestjs/cqrs';
import { RepositoryDetails } from './repository-details';

/** `tenantId`: count only that tenant's points in each repository (null: every point). */
export class ListRepositoriesQuery extends Query<RepositoryDetails[]> {
  constructor(readonly tenantId: string | null = null) {
    super();
  }
}
