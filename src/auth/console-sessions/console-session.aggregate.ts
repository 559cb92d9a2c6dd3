import { Aggregate } from '../../eventing/aggregate';
import { DomainError } from '../../eventing/domain-error';
import { CONSOLE_SESSION_ENDED, CONSOLE_SESSION_STARTED, ConsoleSessionEvent } from './console-session.events';

export type ConsoleSessionState = { status: 'none' } | { status: 'active' | 'ended'; sessionId: string };

export type ConsoleSessionCommand =
  | { kind: 'start'; sessionId: string; secretHash: string; tokenHash: string; expiresAt: string }
  | { kind: 'end'; sessionId: string };

const SHA256_HEX = /^[0-9a-f]{64}$/;

export const consoleSessionAggregate: Aggregate<ConsoleSessionState, ConsoleSessionCommand, ConsoleSessionEvent> = {
  initialState: () => ({ status: 'none' }),

  evolve(state, event) {
    switch (event.type) {
      case CONSOLE_SESSION_STARTED:
        return { status: 'active', sessionId: event.data.sessionId };
      case CONSOLE_SESSION_ENDED:
        return state.status === 'none' ? state : { ...state, status: 'ended' };
    }
  },

  decide(command, state) {
    switch (command.kind) {
      case 'start':
        if (state.status !== 'none') throw new DomainError('conflict', `console session ${command.sessionId} already exists`);
        // the secret and the token themselves must never land in an event
        if (!SHA256_HEX.test(command.secretHash) || !SHA256_HEX.test(command.tokenHash)) throw new DomainError('invalid', 'a console session records sha256 hex digests only');
        return [{ type: CONSOLE_SESSION_STARTED, data: { sessionId: command.sessionId, secretHash: command.secretHash, tokenHash: command.tokenHash, expiresAt: command.expiresAt } }];
      case 'end':
        if (state.status === 'none') throw new DomainError('not_found', `console session ${command.sessionId} does not exist`);
        if (state.status === 'ended') return [];
        return [{ type: CONSOLE_SESSION_ENDED, data: { sessionId: command.sessionId, reason: 'logout' } }];
    }
  },
};
