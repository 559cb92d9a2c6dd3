import { Command } from '../../eventing/command';
import type { RestoreReport } from '../../wire/restore-protocol';
import { RestoreResult } from './restore-result';

/** A report of the agent restoring: progress becomes the restore's events, its last word a notice to the workflow. */
export class RecordRestoreReportCommand extends Command<RestoreResult> {
  constructor(
    readonly restoreId: string,
    readonly report: RestoreReport,
    /** The hub event that asked the agent for the restore (the restore's RestoreStarted), as the agent names it. */
    readonly causationId: string,
  ) {
    super();
  }
}
