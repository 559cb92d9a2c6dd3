import { ReadModel } from '../read-model';
import { ActiveRepositoriesHandler, GetRepositoryHandler, ListRepositoriesHandler } from './repositories.queries';
import { RepositoriesProjector } from './repositories.projector';

export const repositoriesReadModel: ReadModel = {
  projector: RepositoriesProjector,
  queryHandlers: [ActiveRepositoriesHandler, ListRepositoriesHandler, GetRepositoryHandler],
};
