import { Appended, Command } from '../../../eventing/command';
import type { SyncJobCommand as Decision } from '../sync-job.aggregate';

/** Every change of a sync job and its runs: created, a run started, a point begun, a run ended. */
export class SyncJobCommand extends Command<Appended & { eventIds: string[] }> {
  constructor(
    readonly syncJobId: string,
    readonly decision: Decision,
  ) {
    super();
  }
}
