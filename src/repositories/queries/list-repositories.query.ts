import { Query } from '@nestjs/cqrs';
import { RepositoryDetails } from './repository-details';

export class ListRepositoriesQuery extends Query<RepositoryDetails[]> {}
