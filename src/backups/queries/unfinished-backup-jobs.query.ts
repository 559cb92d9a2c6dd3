import { Query } from '@nestjs/cqrs';

/** Jobs of any hub process on this database that have neither completed nor failed, oldest request first. */
export class UnfinishedBackupJobsQuery extends Query<{ jobId: string; phase: string }[]> {
  constructor(readonly vmId: string | null = null) {
    super();
  }
}
