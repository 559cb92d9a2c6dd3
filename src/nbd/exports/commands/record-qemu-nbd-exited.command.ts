import { Appended, Command } from '../../../eventing/command';

/** The qemu-nbd process is gone; `expected` is false when nobody asked it to stop. */
export class RecordQemuNbdExitedCommand extends Command<Appended & { eventIds: string[] }> {
  constructor(
    readonly leaseId: string,
    readonly exit: { pid: number; code: number | null; signal: string | null; stderrTail: string; expected: boolean },
  ) {
    super();
  }
}
