import { ReadModel } from '../read-model';
import { RemotesProjector } from './remotes.projector';
import { GetRemoteHandler, ListRemotesHandler, RemoteNameTakenHandler } from './remotes.queries';
import { SyncJobsProjector } from './sync-jobs.projector';
import { GetSyncJobHandler, ListSyncJobsHandler } from './sync-jobs.queries';

export const remotesReadModel: ReadModel = {
  projector: RemotesProjector,
  queryHandlers: [ListRemotesHandler, GetRemoteHandler, RemoteNameTakenHandler],
};

export const syncJobsReadModel: ReadModel = {
  projector: SyncJobsProjector,
  queryHandlers: [ListSyncJobsHandler, GetSyncJobHandler],
};
