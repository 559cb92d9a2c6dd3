import { Appended, Command } from '../../../eventing/command';

/** Log-out: the session's cookie stops working on every hub sharing the event store; ending it again changes nothing. */
export class EndConsoleSessionCommand extends Command<Appended> {
  constructor(readonly sessionId: string) {
    super();
  }
}
