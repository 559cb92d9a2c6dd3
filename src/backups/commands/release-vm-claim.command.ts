import { Appended, Command } from '../../eventing/command';

export interface ClaimReleased extends Appended {
  eventIds: string[];
}

/** The job ended (completed, failed, cancelled, or found over at start-up): the VM may take its next job. */
export class ReleaseVmClaimCommand extends Command<ClaimReleased> {
  constructor(
    readonly vmId: string,
    readonly jobId: string,
    readonly reason: string,
  ) {
    super();
  }
}
