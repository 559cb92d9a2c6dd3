import { ReadModel } from '../read-model';
import { BackupJobsProjector } from './backup-jobs.projector';

export const backupJobsReadModel: ReadModel = {
  projector: BackupJobsProjector,
  queryHandlers: [],
};
