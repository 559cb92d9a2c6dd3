import { Appended, Command } from '../../../eventing/command';
import type { RemoteRegistered } from '../remote.events';

export class RegisterRemoteCommand extends Command<Appended> {
  constructor(readonly remote: RemoteRegistered['data']) {
    super();
  }
}
