import { ReadModel } from '../read-model';
import { CountRestorePointsHandler, GetRestorePointHandler, KnownBaseHandler, ListRestorePointsHandler, RecycleBinHandler, RepositoryRestorePointsHandler, RestorePointsBeingDeletedHandler, SyncedInRunHandler } from './restore-points.queries';
import { RestorePointsProjector } from './restore-points.projector';

export const restorePointsReadModel: ReadModel = {
  projector: RestorePointsProjector,
  queryHandlers: [GetRestorePointHandler, ListRestorePointsHandler, RestorePointsBeingDeletedHandler, CountRestorePointsHandler, RepositoryRestorePointsHandler, RecycleBinHandler, KnownBaseHandler, SyncedInRunHandler],
};
