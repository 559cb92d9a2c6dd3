import { Appended, Command } from '../../../eventing/command';

/** The token stops working; revoking it again changes nothing. */
export class RevokeApiTokenCommand extends Command<Appended> {
  constructor(readonly tokenId: string) {
    super();
  }
}
