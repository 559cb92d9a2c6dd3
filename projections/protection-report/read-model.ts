import { ReadModel } from '../read-model';
import { BackupsAwaitingRetentionHandler, ProtectionDataHandler, VmsWithPointsHandler } from './protection-data.queries';
import { ProtectionReportProjector } from './protection-report.projector';
import { ProtectionReportHandler } from './protection-report.queries';
import { SimulationHistoryHandler } from './simulation-history.queries';

export const protectionReportReadModel: ReadModel = {
  projector: ProtectionReportProjector,
  queryHandlers: [ProtectionDataHandler, BackupsAwaitingRetentionHandler, VmsWithPointsHandler, ProtectionReportHandler, SimulationHistoryHandler],
};
