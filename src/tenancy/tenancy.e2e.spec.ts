import { randomUUID } from 'node:crypto';
import { mkdirSync, mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { startTestHub, TEST_ADMIN_TOKEN, TestHub } from '../../test/support/test-hub';
import { chainStream, RESTORE_POINT_ADDED } from '../restore-points/chain.events';
import { generateAgentKey } from '../tunnel';

type Operation = { key: string; method: string; path: string; tenancy: string };

/**
 * Tenants on a real hub: acme owns an agent (with its VM), a repository, a job, a restore point and a policy. Every
 * operation of the OpenAPI document is called with globex's operator token and acme's ids: each answers 404 as for an
 * id that does not exist (or 403 where the role already refuses), the hub's own routes too, and no list shows acme's.
 */
describe('tenants: a foreign tenant finds nothing of another', () => {
  let hub: TestHub;
  let dir: string;
  let base: string;
  let operations: Operation[];
  const ids = { agent: '', repository: '', job: '', point: 'rp-acme-1', policy: '', vm: 'vm-acme', correlation: '', initechAgent: '', initechVm: 'vm-initech', initechPoint: 'rp-initech-1' };
  const tokens = { acme: '', globex: '', acmeViewer: '' };

  const call = async (method: string, path: string, token: string, body?: unknown) => {
    const abort = new AbortController();
    const res = await fetch(base + path, {
      method,
      headers: { Authorization: `Bearer ${token}`, ...(body === undefined ? {} : { 'Content-Type': 'application/json' }) },
      body: body === undefined ? undefined : JSON.stringify(body),
      signal: abort.signal,
    });
    const text = res.headers.get('content-type')?.includes('json') ? await res.text() : '';
    abort.abort();
    return { status: res.status, body: text ? JSON.parse(text) : null };
  };
  const admin = (method: string, path: string, body?: unknown) => call(method, path, TEST_ADMIN_TOKEN, body);

  beforeAll(async () => {
    hub = await startTestHub();
    base = await hub.url();
    dir = mkdtempSync(join(tmpdir(), 'sendense-tenancy-'));
    const key = await generateAgentKey(join(dir, 'agent'));
    const agent = (await admin('POST', '/api/v1/agents', { name: 'acme-host', publicKey: key.publicKey })).body;
    ids.agent = agent.agentId;
    const inventory = { vms: [{ vmId: ids.vm, name: 'acme-web', disks: [{ diskId: 'disk0', path: '/images/acme.qcow2', format: 'qcow2', virtualSize: 1 << 30, changeTracking: 'dirty-bitmap' }] }] };
    expect((await call('PUT', `/api/v1/agents/${ids.agent}/inventory`, agent.token, inventory)).status).toBe(200);
    mkdirSync(join(dir, 'repo'));
    ids.repository = (await admin('POST', '/api/v1/repositories', { name: 'acme-repo', kind: 'local', path: join(dir, 'repo') })).body.repositoryId;
    expect((await admin('PUT', `/api/v1/agents/${ids.agent}/tenant`, { tenantId: 'acme' })).body).toMatchObject({ resource: 'agent', id: ids.agent, tenantId: 'acme' });
    expect((await admin('PUT', `/api/v1/repositories/${ids.repository}/tenant`, { tenantId: 'acme' })).status).toBe(200);
    for (const [who, tenantId, role] of [['acme', 'acme', 'operator'], ['globex', 'globex', 'operator'], ['acmeViewer', 'acme', 'viewer']] as const) {
      const issued = await admin('POST', '/api/v1/tokens', { name: `${who.toLowerCase()}-token`, role, tenantId });
      expect(issued.body).toMatchObject({ role, tenantId });
      tokens[who] = issued.body.token;
    }
    const requested = await call('POST', '/api/v1/backups', tokens.acme, { vmId: ids.vm, repositoryId: ids.repository });
    expect(requested.status).toBe(202);
    ids.job = requested.body.jobId;
    ids.correlation = (await admin('GET', `/api/v1/audit/streams/backup-job-${ids.job}`)).body.events[0].metadata.correlationId;
    // a restore point of acme's VM, as a backup records it (its files are not needed to be found or not)
    const point = { restorePointId: ids.point, vmId: ids.vm, repositoryId: ids.repository, backupId: null, type: 'full', parentId: null, createdAt: new Date().toISOString(), disks: [{ diskId: 'disk0', file: `${ids.vm}/disk0/${ids.point}.qcow2`, parentFile: null, virtualSize: 1 << 30, fileBytes: 1 << 20, changeRef: null }] };
    await hub.db.store.append(chainStream(ids.vm, ids.repository), [{ type: RESTORE_POINT_ADDED, data: point, metadata: { correlationId: randomUUID(), causationId: randomUUID(), actor: 'test', schemaVersion: 1 } }]);
    const policy = { name: 'acme-daily', vms: { agentId: ids.agent }, repositoryId: ids.repository, schedule: { cron: '0 2 * * *', timezone: 'UTC' }, retention: { keepLast: 3 }, rpoHours: 26 };
    ids.policy = (await call('POST', '/api/v1/policies', tokens.acme, policy)).body.policyId;
    await waitFor(async () => (await admin('GET', `/api/v1/restore-points/${ids.point}`)).status === 200);
    // initech's VM has a point in acme's repository: the repository is shared, its points are not
    const initechKey = await generateAgentKey(join(dir, 'initech-agent'));
    const initechAgent = (await admin('POST', '/api/v1/agents', { name: 'initech-host', publicKey: initechKey.publicKey })).body;
    ids.initechAgent = initechAgent.agentId;
    const initechInventory = { vms: [{ vmId: ids.initechVm, name: 'initech-db', disks: [{ diskId: 'disk0', path: '/images/initech.qcow2', format: 'qcow2', virtualSize: 1 << 30, changeTracking: 'dirty-bitmap' }] }] };
    expect((await call('PUT', `/api/v1/agents/${ids.initechAgent}/inventory`, initechAgent.token, initechInventory)).status).toBe(200);
    expect((await admin('PUT', `/api/v1/agents/${ids.initechAgent}/tenant`, { tenantId: 'initech' })).status).toBe(200);
    const initechPoint = { ...point, restorePointId: ids.initechPoint, vmId: ids.initechVm, disks: [{ ...point.disks[0], file: `${ids.initechVm}/disk0/${ids.initechPoint}.qcow2` }] };
    await hub.db.store.append(chainStream(ids.initechVm, ids.repository), [{ type: RESTORE_POINT_ADDED, data: initechPoint, metadata: { correlationId: randomUUID(), causationId: randomUUID(), actor: 'test', schemaVersion: 1 } }]);
    await waitFor(async () => (await admin('GET', `/api/v1/restore-points/${ids.initechPoint}`)).status === 200);
    const doc = (await admin('GET', '/api/docs-json')).body;
    operations = Object.entries(doc.paths as Record<string, Record<string, { 'x-sendense-tenancy'?: string }>>).flatMap(([path, methods]) =>
      Object.entries(methods).map(([method, op]) => ({ key: `${method.toUpperCase()} ${path}`, method: method.toUpperCase(), path, tenancy: op['x-sendense-tenancy'] ?? 'undeclared' })),
    );
  }, 60_000);
  afterAll(async () => {
    await hub.close();
    rmSync(dir, { recursive: true, force: true });
  });

  async function waitFor(check: () => Promise<boolean>): Promise<void> {
    for (let i = 0; i < 100 && !(await check()); i++) await new Promise((r) => setTimeout(r, 100));
  }

  /** acme's ids in every path parameter, and in every body field a route checks. */
  const path = (op: Operation) =>
    op.path.replace(/\{(\w+)\}/g, (_m, name: string) => {
      if (name === 'agentId') return ids.agent;
      if (name === 'jobId') return ids.job;
      if (name === 'vmId') return ids.vm;
      if (name === 'policyId') return ids.policy;
      if (name === 'streamId') return `backup-job-${ids.job}`;
      if (name === 'correlationId') return ids.correlation;
      if (name === 'diskId') return 'disk0';
      if (name === 'port') return '1';
      if (name === 'id') return op.path.startsWith('/api/v1/repositories/') ? ids.repository : op.path.startsWith('/api/v1/policies/') ? ids.policy : op.path.startsWith('/api/v1/restore-points/') ? ids.point : randomUUID();
      return randomUUID();
    });
  const body = () => ({ vmId: ids.vm, repositoryId: ids.repository, restorePointId: ids.point, agentId: ids.agent, target: { kind: 'replace', vmId: ids.vm }, vms: { agentId: ids.agent }, policy: { repositoryId: ids.repository, vms: { agentId: ids.agent } } });

  it('every operation declares how it meets tenants', () => {
    expect(operations.filter((o) => o.tenancy === 'undeclared').map((o) => o.key)).toEqual([]);
  });

  it("globex's token learns nothing of acme's objects from any operation: 404 where a route names them or is the hub's own, and no answer mentions them", async () => {
    const acme = () => [ids.agent, ids.repository, ids.job, ids.point, ids.policy, ids.vm, ids.correlation];
    const leaks: string[] = [];
    const expected: Record<string, number> = {};
    const seen: Record<string, number> = {};
    for (const op of operations) {
      const url = path(op);
      const res = await call(op.method, url, tokens.globex, op.method === 'GET' || op.method === 'DELETE' ? undefined : body());
      const ok = res.status >= 200 && res.status < 300;
      if (ok && acme().some((id) => url.includes(id))) leaks.push(`${op.key} answered ${res.status} for acme's object`);
      if (ok && res.body && acme().some((id) => JSON.stringify(res.body).includes(id))) leaks.push(`${op.key} mentions acme's objects`);
      if (op.tenancy === 'owned' || op.tenancy === 'global') {
        seen[op.key] = res.status;
        expected[op.key] = res.status === 403 ? 403 : 404;
      }
    }
    expect(leaks).toEqual([]);
    expect(seen).toEqual(expected);
    expect(Object.values(seen).filter((s) => s === 404).length).toBeGreaterThan(30);
  }, 60_000);

  it("acme's token, on the repository it shares with initech's VM, acts on, lists and counts none of initech's points through any operation", async () => {
    const initech = [ids.initechAgent, ids.initechVm, ids.initechPoint];
    const naming = async () => (await hub.db.dataSource.query(`SELECT count(*)::int AS n FROM es_events WHERE stream_id LIKE $1 OR data::text LIKE $1`, [`%${ids.initechVm}%`]))[0].n as number;
    const before = await naming();
    const leaks: string[] = [];
    const initechPath = (op: Operation) =>
      op.path.replace(/\{(\w+)\}/g, (_m, name: string) => {
        if (name === 'agentId') return ids.initechAgent;
        if (name === 'vmId') return ids.initechVm;
        if (name === 'id') return op.path.startsWith('/api/v1/repositories/') ? ids.repository : op.path.startsWith('/api/v1/restore-points/') ? ids.initechPoint : randomUUID();
        if (name === 'streamId') return `chain-${ids.initechVm}-${ids.repository}`;
        if (name === 'diskId') return 'disk0';
        if (name === 'port') return '1';
        return randomUUID();
      });
    const initechBody = { vmId: ids.initechVm, repositoryId: ids.repository, restorePointId: ids.initechPoint, agentId: ids.initechAgent, target: { kind: 'replace', vmId: ids.initechVm }, vms: { agentId: ids.initechAgent }, policy: { repositoryId: ids.repository, vms: { agentId: ids.initechAgent } } };
    for (const op of operations) {
      const url = initechPath(op);
      const res = await call(op.method, url, tokens.acme, op.method === 'GET' || op.method === 'DELETE' ? undefined : initechBody);
      const ok = res.status >= 200 && res.status < 300;
      if (ok && initech.some((id) => url.includes(id))) leaks.push(`${op.key} answered ${res.status} for initech's object`);
      if (ok && res.body && initech.some((id) => JSON.stringify(res.body).includes(id))) leaks.push(`${op.key} mentions initech's objects`);
    }
    expect(leaks).toEqual([]);
    expect(await naming()).toBe(before);

    // the shared repository's counts and its verify are each tenant's own
    expect((await call('GET', `/api/v1/repositories/${ids.repository}`, tokens.acme)).body.restorePoints).toBe(1);
    expect((await call('GET', '/api/v1/repositories', tokens.acme)).body.map((r: { restorePoints: number }) => r.restorePoints)).toEqual([1]);
    expect((await admin('GET', `/api/v1/repositories/${ids.repository}`)).body.restorePoints).toBe(2);
    // nor does its used space count initech's files: acme is told the size of its own point's (1 MiB as recorded)
    expect((await call('GET', `/api/v1/repositories/${ids.repository}`, tokens.acme)).body.usedBytes).toBe(1 << 20);
    // the space of its points likewise, and no history: the repository's would show how initech's points grow
    const usage = `/api/v1/repositories/${ids.repository}/usage`;
    await waitFor(async () => (await admin('GET', usage)).body.pointsBytes === 2 << 20);
    expect((await admin('GET', usage)).body.samples.at(-1).usedBytes).toBe(2 << 20);
    expect((await call('GET', usage, tokens.acme)).body).toMatchObject({ repositoryId: ids.repository, pointsBytes: 1 << 20, samples: [], growthBytesPerDay: null, estimatedFullAt: null });
    expect((await call('GET', `/api/v1/repositories/${ids.repository}`, tokens.acme)).body).toMatchObject({ pointsBytes: 1 << 20, growthBytesPerDay: null, estimatedFullAt: null });
    expect((await call('GET', usage, tokens.globex)).status).toBe(404);
    const verified = await call('POST', `/api/v1/repositories/${ids.repository}/verify`, tokens.acme);
    expect(verified.body.points.map((p: { restorePointId: string }) => p.restorePointId)).toEqual([ids.point]);
    expect(await naming()).toBe(before);
  }, 60_000);

  it("globex's live stream, even read from the very first event, carries none of acme's", async () => {
    const abort = new AbortController();
    const res = await fetch(`${base}/api/v1/live?after=${'0'.repeat(20)}:${'0'.repeat(20)}`, { headers: { Authorization: `Bearer ${tokens.globex}` }, signal: abort.signal });
    const reader = res.body!.pipeThrough(new TextDecoderStream()).getReader();
    let text = '';
    const deadline = setTimeout(() => abort.abort(), 1500);
    try {
      for (;;) {
        const { value, done } = await reader.read();
        if (done) break;
        text += value;
      }
    } catch {
      // the deadline ended the read
    }
    clearTimeout(deadline);
    expect(text).toContain('event: ready');
    expect(text).not.toContain(ids.job);
    const mine = await fetch(`${base}/api/v1/live?after=${'0'.repeat(20)}:${'0'.repeat(20)}`, { headers: { Authorization: `Bearer ${tokens.acme}` } });
    const first = mine.body!.pipeThrough(new TextDecoderStream()).getReader();
    let acmeText = '';
    while (!acmeText.includes(ids.job)) acmeText += (await first.read()).value ?? '';
    await first.cancel();
    expect(acmeText).toContain('BackupRequested');
  });

  it("acme's own token reaches its objects", async () => {
    for (const p of [`/api/v1/backups/${ids.job}`, `/api/v1/restore-points/${ids.point}`, `/api/v1/repositories/${ids.repository}`, `/api/v1/vms/${ids.vm}/restore-points`, `/api/v1/policies/${ids.policy}`, `/api/v1/audit/streams/backup-job-${ids.job}`, `/api/v1/audit/correlations/${ids.correlation}`]) {
      expect({ p, status: (await call('GET', p, tokens.acme)).status }).toEqual({ p, status: 200 });
    }
    expect((await call('GET', '/api/v1/session', tokens.acmeViewer)).body).toEqual({ actor: 'acmeviewer-token', role: 'viewer', tenantId: 'acme' });
  });

  it("lists show each tenant its own and nothing of the other's; a token without a tenant sees both", async () => {
    const lists: [string, (b: any) => string[]][] = [
      ['/api/v1/agents', (b) => b.map((a: { agentId: string }) => a.agentId)],
      ['/api/v1/vms', (b) => b.map((v: { vmId: string }) => v.vmId)],
      ['/api/v1/repositories', (b) => b.map((r: { repositoryId: string }) => r.repositoryId)],
      ['/api/v1/backups', (b) => b.jobs.map((j: { jobId: string }) => j.jobId)],
      ['/api/v1/policies', (b) => b.map((p: { policyId: string }) => p.policyId)],
      ['/api/v1/policies/matching-vms?namePattern=*', (b) => b.map((v: { vmId: string }) => v.vmId)],
      ['/api/v1/reports/protection', (b) => b.vms.map((v: { vmId: string }) => v.vmId)],
      [`/api/v1/audit/events?streamPrefix=backup-job-`, (b) => [...new Set<string>(b.events.map((e: { streamId: string }) => e.streamId))]],
    ];
    for (const [p, pick] of lists) {
      const mine = pick((await call('GET', p, tokens.acme)).body);
      const theirs = pick((await call('GET', p, tokens.globex)).body);
      const all = pick((await admin('GET', p)).body);
      expect({ p, theirs }).toEqual({ p, theirs: [] });
      expect({ p, mine: mine.length }).toEqual({ p, mine: expect.any(Number) });
      expect(mine.length).toBeGreaterThan(0);
      expect(all).toEqual(expect.arrayContaining(mine));
    }
  });

  it('refuses an admin token confined to a tenant, a malformed tenant id, and a tenant policy that names no agent', async () => {
    const adminOfTenant = await admin('POST', '/api/v1/tokens', { name: 'x', role: 'admin', tenantId: 'acme' });
    expect({ status: adminOfTenant.status, message: adminOfTenant.body.message }).toEqual({ status: 400, message: "a tenant's token is an operator or a viewer, not an admin" });
    expect((await admin('POST', '/api/v1/tokens', { name: 'x', role: 'viewer', tenantId: 'Not A Tenant' })).status).toBe(400);
    expect((await admin('PUT', `/api/v1/agents/${randomUUID()}/tenant`, { tenantId: 'acme' })).status).toBe(404);
    expect((await admin('PUT', `/api/v1/agents/${ids.agent}/tenant`, { tenantId: 'UPPER' })).status).toBe(400);
    const everything = { name: 'greedy', vms: { namePattern: '*' }, repositoryId: ids.repository, schedule: { cron: '0 2 * * *', timezone: 'UTC' }, retention: { keepLast: 3 }, rpoHours: 26 };
    const refused = await call('POST', '/api/v1/policies', tokens.acme, everything);
    expect(refused.status).toBe(404);
    expect(refused.body.message).toMatch(/must name one of its agents in vms.agentId/);
  });
});
