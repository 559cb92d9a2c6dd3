import { Appended, Command } from '../../../eventing/command';

/** qemu-nbd is ready: its server pid and the arguments it runs with. */
export class RecordQemuNbdStartedCommand extends Command<Appended & { eventIds: string[] }> {
  constructor(
    readonly leaseId: string,
    readonly pid: number,
    readonly args: string[],
  ) {
    super();
  }
}
