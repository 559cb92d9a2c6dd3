import { ExportsHoldFiles } from '../nbd/exports/exports-hold-files';
import { ChainStates } from '../restore-points/chain-states';
import { AddRestorePointHandler } from '../restore-points/commands/add-restore-point.handler';
import { CompleteRestorePointDeleteHandler } from '../restore-points/commands/complete-restore-point-delete.handler';
import { FailRestorePointDeleteHandler } from '../restore-points/commands/fail-restore-point-delete.handler';
import { BreakChainHandler } from '../restore-points/commands/break-chain.handler';
import { RecordCorruptionHandler } from '../restore-points/commands/record-corruption.handler';
import { RecordRescanFindingHandler } from '../restore-points/commands/record-rescan-finding.handler';
import { RecordVerificationHandler } from '../restore-points/commands/record-verification.handler';
import { RecycleRestorePointHandler } from '../restore-points/commands/recycle-restore-point.handler';
import { StartRestorePointDeleteHandler } from '../restore-points/commands/start-restore-point-delete.handler';
import { UndeleteRestorePointHandler } from '../restore-points/commands/undelete-restore-point.handler';
import { FilesInUse } from '../restore-points/files-in-use';
import { ImmutablePoints } from '../restore-points/immutable-points';
import { RescanWorkflow } from '../restore-points/rescan.workflow';
import { RestorePointDeletionWorkflow } from '../restore-points/restore-point-deletion.workflow';
import { RestorePointVerificationWorkflow } from '../restore-points/restore-point-verification.workflow';
import { RestorePointsController } from '../restore-points/restore-points.controller';
import { RestorePointsService } from '../restore-points/restore-points.service';
import { SpaceCheck } from '../restore-points/space-check';
import { RepositoryMounts } from './adapters/repository-mounts';
import { RecordCapacitySampleHandler } from './commands/record-capacity-sample.handler';
import { RegisterRepositoryHandler } from './commands/register-repository.handler';
import { RemoveRepositoryHandler } from './commands/remove-repository.handler';
import { RepositoriesController } from './registry/repositories.controller';
import { RepositoriesService } from './registry/repositories.service';
import { RepositoryLifecycleWorkflow } from './repository-lifecycle.workflow';

/** Repositories and the restore-point chains they hold. */
export const repositoriesFeature = {
  controllers: [RepositoriesController, RestorePointsController],
  providers: [
    RegisterRepositoryHandler,
    RemoveRepositoryHandler,
    RecordCapacitySampleHandler,
    AddRestorePointHandler,
    StartRestorePointDeleteHandler,
    CompleteRestorePointDeleteHandler,
    FailRestorePointDeleteHandler,
    RecycleRestorePointHandler,
    UndeleteRestorePointHandler,
    RecordVerificationHandler,
    RecordCorruptionHandler,
    BreakChainHandler,
    RecordRescanFindingHandler,
    RepositoryLifecycleWorkflow,
    RestorePointDeletionWorkflow,
    RestorePointVerificationWorkflow,
    RescanWorkflow,
    RepositoryMounts,
    RepositoriesService,
    RestorePointsService,
    ChainStates,
    FilesInUse,
    ImmutablePoints,
    ExportsHoldFiles,
    SpaceCheck,
  ],
};
