import { Aggregate } from '../../eventing/aggregate';
import { DomainError } from '../../eventing/domain-error';
import { ADMIN_TOKEN_ROTATED, AdminTokenEvent } from './admin-token.events';

/** generation 0: never rotated, the admin token is the one the hub was started with (admin.token or SENDENSE_ADMIN_TOKEN). */
export type AdminTokenState = { generation: number; tokenHash: string | null };

export type AdminTokenCommand = { kind: 'rotate'; tokenHash: string };

export const adminTokenAggregate: Aggregate<AdminTokenState, AdminTokenCommand, AdminTokenEvent> = {
  initialState: () => ({ generation: 0, tokenHash: null }),

  evolve(_state, event) {
    return { generation: event.data.generation, tokenHash: event.data.tokenHash };
  },

  decide(command, state) {
    if (!/^[0-9a-f]{64}$/.test(command.tokenHash)) throw new DomainError('invalid', 'an admin token is recorded as the sha256 hex of the token');
    if (command.tokenHash === state.tokenHash) throw new DomainError('conflict', 'the new admin token is the current one');
    return [{ type: ADMIN_TOKEN_ROTATED, data: { generation: state.generation + 1, tokenHash: command.tokenHash } }];
  },
};
