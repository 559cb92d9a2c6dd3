import { Appended, Command } from '../../../eventing/command';

/** qemu-nbd never became ready (or the hub stopped before it did). */
export class RecordQemuNbdStartFailedCommand extends Command<Appended & { eventIds: string[] }> {
  constructor(
    readonly leaseId: string,
    readonly reason: string,
  ) {
    super();
  }
}
