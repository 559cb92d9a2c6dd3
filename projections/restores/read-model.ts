import { ReadModel } from '../read-model';
import { RestoresProjector } from './restores.projector';
import { GetRestoreHandler, ListRestoresHandler } from './restores.queries';

export const restoresReadModel: ReadModel = {
  projector: RestoresProjector,
  queryHandlers: [GetRestoreHandler, ListRestoresHandler],
};
