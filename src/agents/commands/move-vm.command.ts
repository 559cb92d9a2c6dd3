import { Appended, Command } from '../../eventing/command';

/** An admin gives a VM to another agent: the only way a VM changes owner (a host migration, a conflict resolved). */
export class MoveVmCommand extends Command<Appended> {
  constructor(
    readonly vmId: string,
    readonly toAgentId: string,
    readonly reason: string,
  ) {
    super();
  }
}
