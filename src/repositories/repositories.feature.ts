import { ExportsHoldFiles } from '../nbd/exports/exports-hold-files';
import { FilesInUse } from '../restore-points/files-in-use';
import { RescanService } from '../restore-points/rescan.service';
import { RestorePointsController } from '../restore-points/restore-points.controller';
import { RestorePointsService } from '../restore-points/restore-points.service';
import { SpaceCheck } from '../restore-points/space-check';
import { RepositoriesController } from './registry/repositories.controller';
import { RepositoriesService } from './registry/repositories.service';

/** Repositories and the restore-point chains they hold. */
export const repositoriesFeature = {
  controllers: [RepositoriesController, RestorePointsController],
  providers: [FilesInUse, ExportsHoldFiles, RepositoriesService, RestorePointsService, RescanService, SpaceCheck],
};
