import { ReadModel } from '../read-model';
import { RestoreMountsProjector } from './restore-mounts.projector';
import {
  ActiveRestoreMountsHandler,
  OthersRestoreMountsHandler,
  GetRestoreMountHandler,
  ListRestoreMountsHandler,
  MountIntegrityHandler,
  MountReadingFilesHandler,
  RestoreMountSourceHandler,
  SettledRestoreMountHandler,
} from './restore-mounts.queries';

export const restoreMountsReadModel: ReadModel = {
  projector: RestoreMountsProjector,
  queryHandlers: [GetRestoreMountHandler, ListRestoreMountsHandler, SettledRestoreMountHandler, ActiveRestoreMountsHandler, OthersRestoreMountsHandler, MountReadingFilesHandler, RestoreMountSourceHandler, MountIntegrityHandler],
};
