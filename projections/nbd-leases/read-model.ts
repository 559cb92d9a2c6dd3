import { ReadModel } from '../read-model';
import { ActiveNbdLeasesHandler, NbdPortMetricsHandler } from './nbd-leases.queries';
import { NbdLeasesProjector } from './nbd-leases.projector';

export const nbdLeasesReadModel: ReadModel = {
  projector: NbdLeasesProjector,
  queryHandlers: [ActiveNbdLeasesHandler, NbdPortMetricsHandler],
};
