import { execFile } from 'node:child_process';
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { promisify } from 'node:util';
import { eventCount, startTestHub, TestHub } from '../../test/support/test-hub';

const ROOT = join(__dirname, '../..');

describe('hub API: auth, correlation, tokens, audit, projections, operations', () => {
  let hub: TestHub;
  beforeAll(async () => {
    hub = await startTestHub();
  });
  afterAll(async () => hub.close());

  describe('auth', () => {
    it('serves the health check without a token', async () => {
      const res = await hub.http().get('/api/v1/health').expect(200);
      expect(res.body).toEqual({ status: 'ok', eventStore: 'postgres', database: 'embedded' });
    });

    it.each(['/api/v1/projections', '/metrics', '/api/docs-json', '/api/v1/audit/streams/x', '/api/v1/nothing-here'])('refuses %s without a valid token', async (path) => {
      const missing = await hub.http().get(path).expect(401);
      expect(missing.body.message).toMatch(/Authorization: Bearer/);
      expect(missing.headers['www-authenticate']).toContain('Bearer');
      await hub.http().get(path).set('Authorization', 'Bearer not-a-token').expect(401);
      await hub.http().get(path).set('Authorization', 'Basic abc').expect(401);
    });

    it('opens the Swagger UI in a browser without a token; its Authorize button takes the bearer token', async () => {
      const page = await hub.http().get('/api/docs').redirects(1).expect(200);
      expect(page.text).toContain('swagger-ui');
      const scripts = [...page.text.matchAll(/src="\.?\/?([^"]+\.js)"/g)].map((m) => m[1].replace(/^.*\//, ''));
      expect(scripts).toEqual(expect.arrayContaining(['swagger-ui-bundle.js', 'swagger-ui-init.js']));
      for (const script of scripts) await hub.http().get(`/api/docs/${script}`).expect(200);
      const init = await hub.http().get('/api/docs/swagger-ui-init.js').expect(200);
      expect(init.text).toMatch(/"securitySchemes":\s*\{\s*"bearer":\s*\{\s*"scheme":\s*"bearer"/);
      await hub.http().get('/api/docs/../v1/projections').expect(401);
      await hub.http().get('/api/docs/%2e%2e/v1/projections').expect(401);
      await hub.http().post('/api/docs').expect(401);
    });

    it('serves metrics with projection lag and the OpenAPI document to a valid token', async () => {
      const metrics = await hub.admin(hub.http().get('/metrics')).expect(200);
      expect(metrics.text).toContain('sendense_projection_lag_events{projection="api-tokens"}');
      expect(metrics.text).toContain('sendense_projection_leader{projection="api-tokens"} 1');
      const doc = await hub.admin(hub.http().get('/api/docs-json')).expect(200);
      expect(Object.keys(doc.body.paths)).toEqual(expect.arrayContaining(['/api/v1/health', '/api/v1/audit/streams/{streamId}', '/api/v1/projections/{name}/rebuild']));
    });

    it("the console's API types are generated from this very document (deployment/console-api.sh regenerates them)", async () => {
      const doc = await hub.admin(hub.http().get('/api/docs-json')).expect(200);
      const dir = mkdtempSync(join(tmpdir(), 'sendense-openapi-'));
      try {
        writeFileSync(join(dir, 'openapi.json'), JSON.stringify(doc.body));
        await promisify(execFile)(join(ROOT, 'node_modules/.bin/openapi-typescript'), [join(dir, 'openapi.json'), '-o', join(dir, 'schema.d.ts')]);
        const generated = readFileSync(join(dir, 'schema.d.ts'), 'utf8');
        const committed = readFileSync(join(ROOT, 'console/src/api/schema.d.ts'), 'utf8');
        // a plain equality would print 2,000 lines: say which paths differ, and how to mend it
        const paths = (text: string) => [...text.matchAll(/^ {4}"(\/[^"]+)": \{/gm)].map((m) => m[1]);
        expect({ paths: paths(committed), same: committed === generated, fix: 'run deployment/console-api.sh' }).toEqual({ paths: paths(generated), same: true, fix: 'run deployment/console-api.sh' });
      } finally {
        rmSync(dir, { recursive: true, force: true });
      }
    });
  });

  describe('tokens and event metadata', () => {
    it('issues a named token that works at once, becomes the actor of its events, and stops working when revoked', async () => {
      const issued = await hub.admin(hub.http().post('/api/v1/tokens')).set('X-Correlation-Id', 'corr-issue-1').send({ name: 'operator' }).expect(201);
      expect(issued.body).toEqual({ tokenId: expect.any(String), name: 'operator', role: 'operator', tenantId: null, token: expect.stringMatching(/^sdt_/) });
      const asOperator = (req: ReturnType<TestHub['http']>['get'] extends (...a: never[]) => infer R ? R : never) => req.set('Authorization', `Bearer ${issued.body.token}`);
      await asOperator(hub.http().get('/api/v1/projections')).expect(200);
      await asOperator(hub.http().post('/api/v1/tokens').send({ name: 'sneaky' })).expect(403);

      const audit = await hub.admin(hub.http().get('/api/v1/audit/correlations/corr-issue-1')).expect(200);
      expect(audit.body.events).toHaveLength(1);
      expect(audit.body.events[0]).toMatchObject({
        type: 'ApiTokenIssued',
        revision: '0',
        streamId: `api-token-${issued.body.tokenId}`,
        metadata: { correlationId: 'corr-issue-1', actor: 'admin', schemaVersion: 1, causationId: expect.any(String) },
      });
      expect(audit.body.events[0].data.tokenHash).toMatch(/^[0-9a-f]{64}$/);
      expect(JSON.stringify(audit.body)).not.toContain(issued.body.token);

      await hub.admin(hub.http().delete(`/api/v1/tokens/${issued.body.tokenId}`)).expect(204);
      await asOperator(hub.http().get('/api/v1/projections')).expect(401);
      const listed = await hub.admin(hub.http().get('/api/v1/tokens')).expect(200);
      expect(listed.body).toEqual([expect.objectContaining({ name: 'operator', role: 'operator', status: 'revoked', issuedBy: 'admin' })]);
      expect(listed.body[0].tokenHash).toBeUndefined();
    });

    it('generates a correlation id when none is given and echoes it back', async () => {
      const res = await hub.admin(hub.http().post('/api/v1/tokens')).send({ name: 'gen-corr' }).expect(201);
      const correlationId = res.headers['x-correlation-id'];
      expect(correlationId).toMatch(/^[0-9a-f-]{36}$/);
      const audit = await hub.admin(hub.http().get(`/api/v1/audit/correlations/${correlationId}`)).expect(200);
      expect(audit.body.events[0].data.name).toBe('gen-corr');
    });

    it.each([
      [{ name: 'Bad Name' }, /name must be/],
      [{ name: 'ok', admin: true }, /property admin should not exist/],
      [{}, /name must be/],
      [{ name: 42 }, /name must be a string/],
    ])('refuses the body %j with 400 and appends nothing', async (body, message) => {
      const before = await eventCount(hub.db);
      const res = await hub.admin(hub.http().post('/api/v1/tokens')).send(body).expect(400);
      expect(JSON.stringify(res.body.message)).toMatch(message);
      expect(await eventCount(hub.db)).toBe(before);
    });

    it('refuses a malformed X-Correlation-Id and malformed token ids', async () => {
      await hub.admin(hub.http().get('/api/v1/projections')).set('X-Correlation-Id', 'bad id with spaces').expect(400);
      await hub.admin(hub.http().delete('/api/v1/tokens/not-a-uuid')).expect(400);
      await hub.admin(hub.http().delete('/api/v1/tokens/7d3c4bd8-4b0e-4a8e-9d0e-1c1f0e3c2a11')).expect(404);
    });
  });

  describe('audit', () => {
    it('replays a stream in order with type, data, metadata, revision, position and time', async () => {
      const issued = await hub.admin(hub.http().post('/api/v1/tokens')).send({ name: 'audited' }).expect(201);
      await hub.admin(hub.http().delete(`/api/v1/tokens/${issued.body.tokenId}`)).expect(204);
      const res = await hub.admin(hub.http().get(`/api/v1/audit/streams/api-token-${issued.body.tokenId}`)).expect(200);
      expect(res.body.events.map((e: { type: string; revision: string }) => [e.type, e.revision])).toEqual([
        ['ApiTokenIssued', '0'],
        ['ApiTokenRevoked', '1'],
      ]);
      const [a, b] = res.body.events;
      expect(a.position < b.position).toBe(true);
      expect(new Date(a.time).getTime()).toBeLessThanOrEqual(new Date(b.time).getTime());
      const page = await hub.admin(hub.http().get(`/api/v1/audit/streams/api-token-${issued.body.tokenId}?fromRevision=1&limit=1`)).expect(200);
      expect(page.body.events.map((e: { type: string }) => e.type)).toEqual(['ApiTokenRevoked']);
    });

    it('answers unknown streams with 404 and hostile ids or paging with 400', async () => {
      await hub.admin(hub.http().get('/api/v1/audit/streams/no-such-stream')).expect(404);
      await hub.admin(hub.http().get('/api/v1/audit/correlations/no-such-correlation')).expect(404);
      await hub.admin(hub.http().get('/api/v1/audit/streams/..%2F..%2Fetc')).expect(400);
      await hub.admin(hub.http().get(`/api/v1/audit/streams/${'a'.repeat(300)}`)).expect(400);
      await hub.admin(hub.http().get('/api/v1/audit/streams/x?limit=0')).expect(400);
      await hub.admin(hub.http().get('/api/v1/audit/streams/x?limit=abc')).expect(400);
      await hub.admin(hub.http().get('/api/v1/audit/streams/x?fromRevision=-1')).expect(400);
      await hub.admin(hub.http().get('/api/v1/audit/streams/x?evil=1')).expect(400);
    });

    it('searches events by actor, type, stream prefix and time, a page at a time', async () => {
      const since = new Date().toISOString();
      const carol = await hub.admin(hub.http().post('/api/v1/tokens')).send({ name: 'carol', role: 'admin' }).expect(201);
      const asCarol = (req: ReturnType<ReturnType<TestHub['http']>['post']>) => req.set('Authorization', `Bearer ${carol.body.token}`);
      const issued: string[] = [];
      for (const name of ['c1', 'c2', 'c3']) issued.push((await asCarol(hub.http().post('/api/v1/tokens')).send({ name, role: 'viewer' }).expect(201)).body.tokenId);
      await asCarol(hub.http().delete(`/api/v1/tokens/${issued[0]}`)).expect(204);
      const search = async (q: string) => (await hub.admin(hub.http().get(`/api/v1/audit/events?${q}`)).expect(200)).body;
      const byCarol = await search('actor=carol');
      expect(byCarol.events.map((e: { type: string; data: { name: string } }) => [e.type, e.data.name])).toEqual([
        ['ApiTokenIssued', 'c1'],
        ['ApiTokenIssued', 'c2'],
        ['ApiTokenIssued', 'c3'],
        ['ApiTokenRevoked', 'c1'],
      ]);
      expect(byCarol.next).toBeNull();
      expect((await search('actor=carol&type=ApiTokenRevoked')).events.map((e: { streamId: string }) => e.streamId)).toEqual([`api-token-${issued[0]}`]);
      expect((await search(`actor=carol&streamPrefix=api-token-${issued[1]}`)).events).toHaveLength(1);
      const first = await search('actor=carol&limit=2');
      expect(first.events).toHaveLength(2);
      const second = await search(`actor=carol&limit=2&after=${first.next}`);
      expect(second.events.map((e: { data: { name: string } }) => e.data.name)).toEqual(['c3', 'c1']);
      expect((await search(`actor=carol&to=${encodeURIComponent(since)}`)).events).toEqual([]);
      expect((await search(`actor=carol&from=${encodeURIComponent(since)}`)).events).toHaveLength(4);
      for (const q of ['actor=Bad%20Actor', 'type=a-b', 'from=yesterday', 'limit=0', 'limit=1001', 'after=5', 'streamPrefix=..%2Fx', 'evil=1', `from=${since}&to=${since}`]) {
        await hub.admin(hub.http().get(`/api/v1/audit/events?${q}`)).expect(400);
      }
    });
  });

  describe('projections', () => {
    it('lists projections with position and lag, and rebuilds one into an equal read model', async () => {
      for (const name of ['r1', 'r2', 'r3']) await hub.admin(hub.http().post('/api/v1/tokens')).send({ name }).expect(201);
      const list = await hub.admin(hub.http().get('/api/v1/projections')).expect(200);
      const tokens = list.body.find((p: { name: string }) => p.name === 'api-tokens');
      expect(tokens).toEqual({ name: 'api-tokens', position: expect.any(String), lag: 0, leader: true, lastError: null });
      expect(list.body.map((p: { name: string }) => p.name)).toEqual(expect.arrayContaining(['api-tokens', 'nbd-leases', 'qemu-nbd-processes']));
      const before = await hub.admin(hub.http().get('/api/v1/tokens')).expect(200);

      await hub.admin(hub.http().post('/api/v1/projections/api-tokens/rebuild')).expect(202);
      await waitFor(async () => {
        const l = await hub.admin(hub.http().get('/api/v1/projections')).expect(200);
        return l.body.find((p: { name: string }) => p.name === 'api-tokens').position === tokens.position;
      });
      const after = await hub.admin(hub.http().get('/api/v1/tokens')).expect(200);
      expect(after.body).toEqual(before.body);
    });

    it('answers unknown projections with 404 and bad names with 400', async () => {
      await hub.admin(hub.http().post('/api/v1/projections/nope/rebuild')).expect(404);
      await hub.admin(hub.http().post('/api/v1/projections/Bad%20Name/rebuild')).expect(400);
    });
  });
});

async function waitFor(check: () => Promise<boolean>, timeoutMs = 10_000): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  while (!(await check())) {
    if (Date.now() > deadline) throw new Error('timed out');
    await new Promise((r) => setTimeout(r, 25));
  }
}

