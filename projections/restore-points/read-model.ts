import { ReadModel } from '../read-model';
import { RestorePointsProjector } from './restore-points.projector';

export const restorePointsReadModel: ReadModel = {
  projector: RestorePointsProjector,
  queryHandlers: [],
};
