import { Appended, Command } from '../../../eventing/command';

export class ReplaceRemoteTokenCommand extends Command<Appended> {
  constructor(
    readonly remoteId: string,
    readonly tokenSha256: string,
  ) {
    super();
  }
}
