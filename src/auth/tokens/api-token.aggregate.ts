import type { Role } from '../../eventing/roles';
import { Aggregate } from '../../eventing/aggregate';
import { DomainError } from '../../eventing/domain-error';
import { API_TOKEN_ISSUED, API_TOKEN_REVOKED, ApiTokenEvent } from './api-token.events';

export type ApiTokenState = { status: 'none' } | { status: 'active' | 'revoked'; tokenId: string; name: string };

export type ApiTokenCommand =
  | { kind: 'issue'; tokenId: string; name: string; tokenHash: string; role: Role; tenantId: string | null }
  | { kind: 'revoke'; tokenId: string };

export const apiTokenAggregate: Aggregate<ApiTokenState, ApiTokenCommand, ApiTokenEvent> = {
  initialState: () => ({ status: 'none' }),

  evolve(state, event) {
    switch (event.type) {
      case API_TOKEN_ISSUED:
        return { status: 'active', tokenId: event.data.tokenId, name: event.data.name };
      case API_TOKEN_REVOKED:
        return state.status === 'none' ? state : { ...state, status: 'revoked' };
    }
  },

  decide(command, state) {
    switch (command.kind) {
      case 'issue':
        if (state.status !== 'none') throw new DomainError('conflict', `token ${command.tokenId} already exists`);
        // a tenant's admin would manage the tokens, agents and repositories of every tenant
        if (command.tenantId && (command.role === 'admin' || command.role === 'sync')) throw new DomainError('invalid', `a tenant's token is an operator or a viewer, not ${command.role === 'admin' ? 'an admin' : 'a sync token'}`);
        return [{ type: API_TOKEN_ISSUED, data: { tokenId: command.tokenId, name: command.name, tokenHash: command.tokenHash, role: command.role, ...(command.tenantId ? { tenantId: command.tenantId } : {}) } }];
      case 'revoke':
        if (state.status === 'none') throw new DomainError('not_found', `token ${command.tokenId} does not exist`);
        if (state.status === 'revoked') return [];
        return [{ type: API_TOKEN_REVOKED, data: { tokenId: command.tokenId, name: state.name } }];
    }
  },
};
