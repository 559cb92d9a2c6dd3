import { ReadModel } from '../read-model';
import { RestoreMountsProjector } from './restore-mounts.projector';

export const restoreMountsReadModel: ReadModel = {
  projector: RestoreMountsProjector,
  queryHandlers: [],
};
