import { ReadModel } from '../read-model';
import { BackupJobsProjector } from './backup-jobs.projector';
import { BackupJobsReportHandler, GetBackupJobHandler, ListBackupJobsHandler, UnfinishedBackupJobsHandler } from './backup-jobs.queries';

export const backupJobsReadModel: ReadModel = {
  projector: BackupJobsProjector,
  queryHandlers: [GetBackupJobHandler, ListBackupJobsHandler, BackupJobsReportHandler, UnfinishedBackupJobsHandler],
};
