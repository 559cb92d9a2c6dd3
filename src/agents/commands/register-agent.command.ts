import { Appended, Command } from '../../eventing/command';

export interface RegisteredAgent extends Appended {
  agentId: string;
  name: string;
  fingerprint: string;
}

/** An agent gets an id and its key on record, with the id of the API token it reports back with. */
export class RegisterAgentCommand extends Command<RegisteredAgent> {
  constructor(
    readonly name: string,
    readonly publicKey: string,
    readonly tokenId: string,
  ) {
    super();
  }
}
