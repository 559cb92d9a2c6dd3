import { REDACTED, redactSecrets, type AuditEvent } from './audit-event';

const event = (data: AuditEvent['data']): AuditEvent => ({
  eventId: 'e1',
  streamId: 's',
  type: 'T',
  revision: '0',
  position: 'p',
  time: '2026-01-01T00:00:00.000Z',
  data,
  metadata: { correlationId: 'c', causationId: 'c', actor: 'alice', schemaVersion: 1 },
});

describe('the audit as a non-admin reads it', () => {
  it("hides a token's hash, a remote's token digest and any secret, at any depth", () => {
    const hash = 'a'.repeat(64);
    const shown = redactSecrets(event({ tokenId: 't1', name: 'ci', tokenHash: hash, remote: { tokenSha256: hash, secret: 'x' }, list: [{ hash }] }));
    expect(shown.data).toEqual({ tokenId: 't1', name: 'ci', tokenHash: REDACTED, remote: { tokenSha256: REDACTED, secret: REDACTED }, list: [{ hash: REDACTED }] });
    expect(JSON.stringify(shown)).not.toContain(hash);
  });

  it('keeps ids, names, content digests and the metadata that tells the story', () => {
    const data = { tokenId: 't1', digests: { algorithm: 'sha256', blockSize: 1 }, sha256: 'b'.repeat(64), passwordFile: '/etc/cifs.pw' };
    const shown = redactSecrets(event(data));
    expect(shown.data).toEqual(data);
    expect(shown.metadata).toEqual(event({}).metadata);
  });
});
