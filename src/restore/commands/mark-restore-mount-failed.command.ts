import { Appended, Command } from '../../eventing/command';

export class MarkRestoreMountFailedCommand extends Command<Appended & { eventIds: string[] }> {
  constructor(
    readonly mountId: string,
    readonly reason: string,
  ) {
    super();
  }
}
