import { Aggregate } from '../../eventing/aggregate';
import { DomainError } from '../../eventing/domain-error';
import { REMOTE_REGISTERED, REMOTE_TOKEN_REPLACED, RemoteEvent, RemoteRegistered } from './remote.events';

export interface RemoteState {
  remote: RemoteRegistered['data'] | null;
}

export type RemoteCommand = { kind: 'register'; remote: RemoteRegistered['data']; nameTaken: boolean } | { kind: 'replaceToken'; remoteId: string; tokenSha256: string };

export const remoteAggregate: Aggregate<RemoteState, RemoteCommand, RemoteEvent> = {
  initialState: () => ({ remote: null }),

  evolve(state, event) {
    if (event.type === REMOTE_TOKEN_REPLACED) return { remote: state.remote && { ...state.remote, tokenSha256: event.data.tokenSha256 } };
    return { remote: { ...event.data } };
  },

  decide(command, state) {
    if (command.kind === 'replaceToken') {
      if (!state.remote) throw new DomainError('not_found', `remote ${command.remoteId} does not exist`);
      return [{ type: REMOTE_TOKEN_REPLACED, data: { remoteId: command.remoteId, tokenSha256: command.tokenSha256 } }];
    }
    if (state.remote) throw new DomainError('conflict', `remote ${command.remote.remoteId} is already registered`);
    if (command.nameTaken) throw new DomainError('conflict', `a remote named ${command.remote.name} is already registered`);
    return [{ type: REMOTE_REGISTERED, data: { ...command.remote } }];
  },
};
