import { randomUUID } from 'node:crypto';
import { REDACTED } from '../../src/audit/audit-event';
import { hashToken } from '../../src/auth/token-hash';
import { startTestHub, TEST_ADMIN_TOKEN, TestHub } from '../support/test-hub';

/**
 * What the audit tells a token that is not an admin, on a real hub: no token's hash (a viewer could otherwise test
 * guesses offline, or recognise a token anywhere it is seen), and for a tenant's token nothing that says an id it
 * may not see exists.
 */
describe('the audit as a viewer and as a tenant read it', () => {
  let hub: TestHub;
  let base: string;
  const issued: Record<string, { tokenId: string; token: string }> = {};
  const adminCorrelation = `admin-request-${randomUUID()}`;

  const get = async (path: string, token: string) => {
    const res = await fetch(base + path, { headers: { Authorization: `Bearer ${token}` } });
    const text = await res.text();
    return { status: res.status, text, type: res.headers.get('content-type'), length: res.headers.get('content-length') };
  };
  const post = async (path: string, token: string, body: unknown, headers: Record<string, string> = {}) => {
    const res = await fetch(base + path, { method: 'POST', headers: { Authorization: `Bearer ${token}`, 'Content-Type': 'application/json', ...headers }, body: JSON.stringify(body) });
    return { status: res.status, body: (await res.json()) as any };
  };

  beforeAll(async () => {
    hub = await startTestHub();
    base = await hub.url();
    for (const [name, role, tenantId] of [['auditor', 'viewer', undefined], ['ops', 'operator', undefined], ['globex-viewer', 'viewer', 'globex']] as const) {
      // the admin's request carries a correlation id of its own: an id that exists, and that no tenant may see
      const res = await post('/api/v1/tokens', TEST_ADMIN_TOKEN, { name, role, ...(tenantId ? { tenantId } : {}) }, name === 'ops' ? { 'X-Correlation-Id': adminCorrelation } : {});
      expect(res.status).toBe(201);
      issued[name] = res.body;
    }
  });
  afterAll(async () => hub?.close());

  const hashes = () => Object.values(issued).map((t) => hashToken(t.token));

  it("a viewer's and an operator's audit reads (search, stream, correlation) carry no token's hash; an admin's do", async () => {
    for (const reader of ['auditor', 'ops']) {
      const token = issued[reader].token;
      const reads = [
        await get('/api/v1/audit/events?type=ApiTokenIssued', token),
        await get(`/api/v1/audit/streams/api-token-${issued.ops.tokenId}`, token),
        await get(`/api/v1/audit/correlations/${adminCorrelation}`, token),
      ];
      for (const read of reads) {
        expect(read.status).toBe(200);
        for (const hash of hashes()) expect(read.text).not.toContain(hash);
        expect(read.text).not.toMatch(/[0-9a-f]{64}/);
      }
      const events = JSON.parse(reads[0].text).events as { type: string; data: { name: string; tokenHash: string } }[];
      expect(events.map((e) => [e.data.name, e.data.tokenHash])).toEqual([
        ['auditor', REDACTED],
        ['ops', REDACTED],
        ['globex-viewer', REDACTED],
      ]);
    }
    // the admin's audit is still the whole record
    const full = JSON.parse((await get('/api/v1/audit/events?type=ApiTokenIssued', TEST_ADMIN_TOKEN)).text).events as { data: { tokenHash: string } }[];
    expect(full.map((e) => e.data.tokenHash)).toEqual(hashes());
  });

  it("a tenant's token gets, for a correlation id it may not see and for one that does not exist, the same 404 to the byte", async () => {
    const viewer = issued['globex-viewer'].token;
    // the admin's correlation exists (the operator reads it), globex's viewer may not see it
    expect((await get(`/api/v1/audit/correlations/${adminCorrelation}`, issued.ops.token)).status).toBe(200);
    const unknown = `admin-request-${randomUUID()}`;
    const hidden = await get(`/api/v1/audit/correlations/${adminCorrelation}`, viewer);
    const missing = await get(`/api/v1/audit/correlations/${unknown}`, viewer);
    expect(hidden.status).toBe(404);
    expect(missing.status).toBe(404);
    expect(hidden.text.replace(adminCorrelation, '<id>')).toBe(missing.text.replace(unknown, '<id>'));
    expect([hidden.type, hidden.length]).toEqual([missing.type, missing.length]);
  });

  it("a tenant's token gets, for a stream it may not see and for one that does not exist, the same 404 to the byte", async () => {
    const viewer = issued['globex-viewer'].token;
    const existing = `api-token-${issued.ops.tokenId}`;
    const unknown = `api-token-${randomUUID()}`;
    const hidden = await get(`/api/v1/audit/streams/${existing}`, viewer);
    const missing = await get(`/api/v1/audit/streams/${unknown}`, viewer);
    expect(hidden.status).toBe(404);
    expect(hidden.text.replace(existing, '<id>')).toBe(missing.text.replace(unknown, '<id>'));
    // and as a caller who sees every tenant is told of a stream that does not exist
    const told = await get(`/api/v1/audit/streams/${unknown}`, issued.auditor.token);
    expect(told.text).toBe(missing.text);
  });

  it("a viewer reads the admin token's rotation without its hash (run last: it ends the admin token the tests above use)", async () => {
    const rotated = await post('/api/v1/tokens/admin/rotate', TEST_ADMIN_TOKEN, {});
    expect(rotated.status).toBe(201);
    const read = await get('/api/v1/audit/events?type=AdminTokenRotated', issued.auditor.token);
    expect(read.status).toBe(200);
    expect(JSON.parse(read.text).events.map((e: { data: unknown }) => e.data)).toEqual([{ generation: 1, tokenHash: REDACTED }]);
    expect(read.text).not.toContain(hashToken(rotated.body.token));
    expect(read.text).not.toContain(rotated.body.token);
  });
});
