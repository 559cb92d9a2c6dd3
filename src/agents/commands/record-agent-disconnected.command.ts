import { Appended, Command } from '../../eventing/command';

/** The agent's session ended (or ended with a previous run of the hub). */
export class RecordAgentDisconnectedCommand extends Command<Appended> {
  constructor(
    readonly agentId: string,
    readonly reason: string,
    /** Only the session recorded through this hub process: a later one through another hub stays. */
    readonly via?: string,
  ) {
    super();
  }
}
