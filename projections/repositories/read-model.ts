import { ReadModel } from '../read-model';
import { RepositoriesProjector } from './repositories.projector';

export const repositoriesReadModel: ReadModel = {
  projector: RepositoriesProjector,
  queryHandlers: [],
};
