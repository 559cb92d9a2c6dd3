import { ExportsHoldFiles } from './adapters/exports-hold-files';
import { ChainStates } from './chain-states';
import { AddRestorePointHandler } from './commands/add-restore-point.handler';
import { AdoptRestorePointDeleteHandler } from './commands/adopt-restore-point-delete.handler';
import { CompleteRestorePointDeleteHandler } from './commands/complete-restore-point-delete.handler';
import { FailRestorePointDeleteHandler } from './commands/fail-restore-point-delete.handler';
import { BreakChainHandler } from './commands/break-chain.handler';
import { RecordCorruptionHandler } from './commands/record-corruption.handler';
import { RecordRescanFindingHandler } from './commands/record-rescan-finding.handler';
import { RecordVerificationHandler } from './commands/record-verification.handler';
import { RecycleRestorePointHandler } from './commands/recycle-restore-point.handler';
import { StartRestorePointDeleteHandler } from './commands/start-restore-point-delete.handler';
import { UndeleteRestorePointHandler } from './commands/undelete-restore-point.handler';
import { FilesInUse } from './files-in-use';
import { ImmutablePoints } from './immutable-points';
import { RepositoryChecksController } from './repository-checks.controller';
import { RescanWorkflow } from './rescan.workflow';
import { RestorePointDeletionWorkflow } from './restore-point-deletion.workflow';
import { RestorePointVerificationWorkflow } from './restore-point-verification.workflow';
import { RestorePointsController } from './restore-points.controller';
import { RestorePointsService } from './restore-points.service';
import { SpaceCheck } from './space-check';

/** The restore-point chains the repositories hold: adding, deleting, verifying and rescanning points. */
export const restorePointsFeature = {
  controllers: [RestorePointsController, RepositoryChecksController],
  providers: [
    AddRestorePointHandler,
    StartRestorePointDeleteHandler,
    AdoptRestorePointDeleteHandler,
    CompleteRestorePointDeleteHandler,
    FailRestorePointDeleteHandler,
    RecycleRestorePointHandler,
    UndeleteRestorePointHandler,
    RecordVerificationHandler,
    RecordCorruptionHandler,
    BreakChainHandler,
    RecordRescanFindingHandler,
    RestorePointDeletionWorkflow,
    RestorePointVerificationWorkflow,
    RescanWorkflow,
    RestorePointsService,
    ChainStates,
    FilesInUse,
    ImmutablePoints,
    ExportsHoldFiles,
    SpaceCheck,
  ],
};
