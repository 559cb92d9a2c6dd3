import { Command } from '../../eventing/command';
import { AgentReport } from '../../wire/backup-protocol';
import { BackupJobResult } from './backup-job-result';

/** A fact the job's agent reports about its part of the job, already parsed and checked. */
export class RecordAgentReportCommand extends Command<BackupJobResult> {
  constructor(
    readonly jobId: string,
    readonly report: AgentReport,
    /** The hub event the agent was started by (the job's SnapshotRequested), as it names it. */
    readonly causationId: string,
  ) {
    super();
  }
}
