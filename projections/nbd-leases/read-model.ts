import { ReadModel } from '../read-model';
import { NbdLeasesProjector } from './nbd-leases.projector';

export const nbdLeasesReadModel: ReadModel = {
  projector: NbdLeasesProjector,
  queryHandlers: [],
};
