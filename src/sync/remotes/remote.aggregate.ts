import { Aggregate } from '../../eventing/aggregate';
import { DomainError } from '../../eventing/domain-error';
import { REMOTE_REGISTERED, RemoteEvent, RemoteRegistered } from './remote.events';

export interface RemoteState {
  remote: RemoteRegistered['data'] | null;
}

export type RemoteCommand = { kind: 'register'; remote: RemoteRegistered['data']; nameTaken: boolean };

export const remoteAggregate: Aggregate<RemoteState, RemoteCommand, RemoteEvent> = {
  initialState: () => ({ remote: null }),

  evolve(_state, event) {
    return { remote: { ...event.data } };
  },

  decide(command, state) {
    if (state.remote) throw new DomainError('conflict', `remote ${command.remote.remoteId} is already registered`);
    if (command.nameTaken) throw new DomainError('conflict', `a remote named ${command.remote.name} is already registered`);
    return [{ type: REMOTE_REGISTERED, data: { ...command.remote } }];
  },
};
