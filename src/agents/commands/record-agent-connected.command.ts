import { Appended, Command } from '../../eventing/command';

/** The agent opened its SSH session with this hub process. */
export class RecordAgentConnectedCommand extends Command<Appended> {
  constructor(
    readonly agentId: string,
    readonly remoteAddress: string,
    /** The hub process that holds the session. */
    readonly hubInstance: string,
  ) {
    super();
  }
}
