import { Appended, Command } from '../../../eventing/command';

/** The stop the hub asked for is complete; the lease may be released now. */
export class RecordQemuNbdStoppedCommand extends Command<Appended & { eventIds: string[] }> {
  constructor(
    readonly leaseId: string,
  ) {
    super();
  }
}
