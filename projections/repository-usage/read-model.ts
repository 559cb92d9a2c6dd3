import { ReadModel } from '../read-model';
import { RepositoryUsageProjector } from './repository-usage.projector';
import { GetRepositoryUsageHandler } from './repository-usage.queries';

export const repositoryUsageReadModel: ReadModel = {
  projector: RepositoryUsageProjector,
  queryHandlers: [GetRepositoryUsageHandler],
};
