import { Appended, Command } from '../../../eventing/command';

export interface IssuedToken extends Appended {
  tokenId: string;
  name: string;
  /** Returned this once; events and read models hold only its hash. */
  token: string;
}

/** A named bearer token; its name becomes the actor of every event it causes. */
export class IssueApiTokenCommand extends Command<IssuedToken> {
  constructor(readonly name: string) {
    super();
  }
}
