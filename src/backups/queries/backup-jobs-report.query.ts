import { Query } from '@nestjs/cqrs';

export interface BackupJobsReport {
  from: string;
  to: string;
  vms: { vmId: string; successes: number; failures: number; bytes: number; averageDurationMs: number; longestDurationMs: number }[];
}

/** Per VM: the jobs that ended in [from, to). */
export class BackupJobsReportQuery extends Query<BackupJobsReport> {
  constructor(
    readonly from: string,
    readonly to: string,
  ) {
    super();
  }
}
