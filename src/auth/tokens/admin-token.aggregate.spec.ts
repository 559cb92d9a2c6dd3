import { fold } from '../../eventing/aggregate';
import { DomainError } from '../../eventing/domain-error';
import { adminTokenAggregate as admin } from './admin-token.aggregate';
import { ADMIN_TOKEN_ROTATED, AdminTokenEvent } from './admin-token.events';

const h1 = '1'.repeat(64);
const h2 = '2'.repeat(64);
const first: AdminTokenEvent = { type: ADMIN_TOKEN_ROTATED, data: { generation: 1, tokenHash: h1 } };

describe('admin token rules', () => {
  it('a first rotation is generation 1', () => {
    expect(admin.decide({ kind: 'rotate', tokenHash: h1 }, admin.initialState())).toEqual([first]);
  });

  it('each rotation after it counts on, and the state holds the newest hash only', () => {
    expect(admin.decide({ kind: 'rotate', tokenHash: h2 }, fold(admin, [first]))).toEqual([{ type: ADMIN_TOKEN_ROTATED, data: { generation: 2, tokenHash: h2 } }]);
    expect(fold(admin, [first, { type: ADMIN_TOKEN_ROTATED, data: { generation: 2, tokenHash: h2 } }])).toEqual({ generation: 2, tokenHash: h2 });
  });

  it('refuses anything but a sha256 hex, so a token itself can never land in the event', () => {
    expect(() => admin.decide({ kind: 'rotate', tokenHash: 'sdt_secret-token-itself' }, admin.initialState())).toThrow(DomainError);
  });

  it('refuses to rotate to the current token', () => {
    expect(() => admin.decide({ kind: 'rotate', tokenHash: h1 }, fold(admin, [first]))).toThrow(/current one/);
  });
});
