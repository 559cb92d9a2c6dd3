import { Type } from '@nestjs/common';
import { DrillScreenshots } from './adapters/drill-screenshots';
import { PointView } from './adapters/point-view';
import { RecordDrillResultHandler } from './commands/record-drill-result.handler';
import { AgentOwnsRestoreGuard } from './agent-owns-restore.guard';
import { CancelRestoreHandler } from './commands/cancel-restore.handler';
import { CompleteRestoreHandler } from './commands/complete-restore.handler';
import { FailRestoreHandler } from './commands/fail-restore.handler';
import { RecordRestoreCancelledHandler } from './commands/record-restore-cancelled.handler';
import { RecordRestoreReportHandler } from './commands/record-restore-report.handler';
import { RequestRestoreHandler } from './commands/request-restore.handler';
import { StartRestoreHandler } from './commands/start-restore.handler';
import { RestoreReader } from './restore.reader';
import { RestoreWorkflow } from './restore.workflow';
import { RestoresController } from './restores.controller';
import { UnfinishedRestoresHoldPoints } from './unfinished-restores-hold-points';
import { DecideDrillSlotHandler } from './drill-schedule/decide-drill-slot.handler';
import { DrillSchedulerWorkflow } from './drill-schedule/drill-scheduler.workflow';

/** Getting a VM back: whole-VM restores to a hypervisor host through its agent. */
export const vmRestoreFeature: { controllers: Type[]; providers: Type[] } = {
  controllers: [RestoresController],
  providers: [
    RequestRestoreHandler,
    StartRestoreHandler,
    RecordRestoreReportHandler,
    CompleteRestoreHandler,
    FailRestoreHandler,
    CancelRestoreHandler,
    RecordRestoreCancelledHandler,
    RecordDrillResultHandler,
    DrillScreenshots,
    RestoreReader,
    RestoreWorkflow,
    PointView,
    UnfinishedRestoresHoldPoints,
    AgentOwnsRestoreGuard,
    DecideDrillSlotHandler,
    DrillSchedulerWorkflow,
  ],
};
