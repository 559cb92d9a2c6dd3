import { Query } from '@nestjs/cqrs';

export interface JobsOnDay {
  /** YYYY-MM-DD in the report's time zone. */
  day: string;
  successes: number;
  failures: number;
}

export interface BackupJobsReport {
  from: string;
  to: string;
  timezone: string;
  vms: { vmId: string; successes: number; failures: number; bytes: number; averageDurationMs: number; longestDurationMs: number; days: JobsOnDay[] }[];
}

/** Per VM: the jobs that ended in [from, to), in all and per day of `timezone`. */
export class BackupJobsReportQuery extends Query<BackupJobsReport> {
  constructor(
    readonly from: string,
    readonly to: string,
    readonly timezone: string,
  ) {
    super();
  }
}

/** The days of the VMs a caller may see, summed: done after the tenant's filter, so a day counts only its own VMs' jobs. */
export function jobsPerDay(vms: BackupJobsReport['vms']): JobsOnDay[] {
  const days = new Map<string, JobsOnDay>();
  for (const d of vms.flatMap((v) => v.days)) {
    const sum = days.get(d.day) ?? { day: d.day, successes: 0, failures: 0 };
    sum.successes += d.successes;
    sum.failures += d.failures;
    days.set(d.day, sum);
  }
  return [...days.values()].sort((a, b) => a.day.localeCompare(b.day));
}
