import { Query } from '@nestjs/cqrs';
import { BackupJobDto } from './get-backup-job.query';

export interface BackupJobPage {
  jobs: BackupJobDto[];
  nextCursor: string | null;
}

/** Newest first, `limit` at a time; the cursor continues after the last job of the previous page. */
export class ListBackupJobsQuery extends Query<BackupJobPage> {
  constructor(readonly filter: { vmId?: string; status?: string; limit?: number; cursor?: string }) {
    super();
  }
}
