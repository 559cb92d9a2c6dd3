import { Appended, Command } from '../../../eventing/command';
import { ExportTarget } from '../qemu-nbd.events';

/** Record what is about to be exported on a leased port, before the process exists. */
export class RequestQemuNbdStartCommand extends Command<Appended & { eventIds: string[] }> {
  constructor(
    readonly leaseId: string,
    readonly target: ExportTarget,
  ) {
    super();
  }
}
