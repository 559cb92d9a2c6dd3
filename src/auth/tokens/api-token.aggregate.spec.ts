import { fold } from '../../eventing/aggregate';
import { DomainError } from '../../eventing/domain-error';
import { apiTokenAggregate as token } from './api-token.aggregate';
import { API_TOKEN_ISSUED, API_TOKEN_REVOKED, ApiTokenEvent } from './api-token.events';

const issued: ApiTokenEvent = { type: API_TOKEN_ISSUED, data: { tokenId: 't1', name: 'ci', tokenHash: 'h', role: 'viewer' } };
const revoked: ApiTokenEvent = { type: API_TOKEN_REVOKED, data: { tokenId: 't1', name: 'ci' } };

describe('api token rules', () => {
  it('issues a new token', () => {
    expect(token.decide({ kind: 'issue', tokenId: 't1', name: 'ci', tokenHash: 'h', role: 'viewer', tenantId: null }, token.initialState())).toEqual([issued]);
  });

  it('records the tenant a token is confined to', () => {
    expect(token.decide({ kind: 'issue', tokenId: 't1', name: 'ci', tokenHash: 'h', role: 'viewer', tenantId: 'acme' }, token.initialState())).toEqual([
      { type: API_TOKEN_ISSUED, data: { tokenId: 't1', name: 'ci', tokenHash: 'h', role: 'viewer', tenantId: 'acme' } },
    ]);
  });

  it('refuses an admin token confined to a tenant', () => {
    expect(() => token.decide({ kind: 'issue', tokenId: 't1', name: 'ci', tokenHash: 'h', role: 'admin', tenantId: 'acme' }, token.initialState())).toThrow("a tenant's token is an operator or a viewer, not an admin");
  });

  it('refuses to issue the same token twice', () => {
    expect(() => token.decide({ kind: 'issue', tokenId: 't1', name: 'ci', tokenHash: 'h', role: 'viewer', tenantId: null }, fold(token, [issued]))).toThrow(DomainError);
  });

  it('revokes an active token once; revoking again changes nothing', () => {
    expect(token.decide({ kind: 'revoke', tokenId: 't1' }, fold(token, [issued]))).toEqual([revoked]);
    expect(token.decide({ kind: 'revoke', tokenId: 't1' }, fold(token, [issued, revoked]))).toEqual([]);
  });

  it('cannot revoke a token that never existed', () => {
    expect(() => token.decide({ kind: 'revoke', tokenId: 'nope' }, token.initialState())).toThrow(/does not exist/);
  });

  it('folds issue then revoke into a revoked token', () => {
    expect(fold(token, [issued, revoked])).toEqual({ status: 'revoked', tokenId: 't1', name: 'ci' });
  });
});
