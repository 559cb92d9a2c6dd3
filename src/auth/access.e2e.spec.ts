import { randomUUID } from 'node:crypto';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { startTestHub, TEST_ADMIN_TOKEN, TestHub } from '../../test/support/test-hub';
import { generateAgentKey } from '../tunnel';
import { ACCESS_LEVELS, AccessLevel, Role, roleMay } from '../eventing/roles';

/**
 * Who may call what, written here once more by hand: a route whose rule changes, or a new route without a rule, fails
 * this test until the table says what it should be.
 */
const EXPECTED: Record<string, AccessLevel> = {
  'GET /api/v1/health': 'public',
  'GET /metrics': 'read',
  'GET /api/v1/session': 'any',
  'POST /api/v1/session': 'read',
  'DELETE /api/v1/session': 'any',
  'POST /api/v1/tokens': 'admin',
  'GET /api/v1/tokens': 'admin',
  'DELETE /api/v1/tokens/{tokenId}': 'admin',
  'POST /api/v1/tokens/admin/rotate': 'admin',
  'GET /api/v1/projections': 'read',
  'POST /api/v1/projections/{name}/rebuild': 'admin',
  'POST /api/v1/agents': 'admin',
  'GET /api/v1/agents': 'read',
  'PUT /api/v1/agents/{agentId}/inventory': 'agent',
  'GET /api/v1/vms': 'read',
  'GET /api/v1/vm-ownership-conflicts': 'admin',
  'POST /api/v1/vms/{vmId}/move': 'admin',
  'POST /api/v1/repositories': 'admin',
  'POST /api/v1/repositories/{id}/gc': 'admin',
  'GET /api/v1/repositories': 'read',
  'GET /api/v1/repositories/{id}': 'read',
  'GET /api/v1/repositories/{id}/usage': 'read',
  'PATCH /api/v1/repositories/{id}': 'admin',
  'DELETE /api/v1/repositories/{id}': 'admin',
  'POST /api/v1/repositories/{id}/rescan': 'admin',
  'POST /api/v1/repositories/{id}/verify': 'operate',
  'POST /api/v1/backups': 'operate',
  'GET /api/v1/backups': 'read',
  'GET /api/v1/backups/{jobId}': 'read',
  'POST /api/v1/backups/{jobId}/cancel': 'operate',
  'GET /api/v1/backups/{jobId}/events': 'read',
  'POST /api/v1/backups/{jobId}/agent-reports': 'agent',
  'PUT /api/v1/backups/{jobId}/disks/{diskId}/digests': 'agent',
  'GET /api/v1/backups/{jobId}/disks/{diskId}/known-digests': 'agent',
  'PUT /api/v1/backups/{jobId}/configuration': 'agent',
  'GET /api/v1/reports/jobs': 'read',
  'GET /api/v1/reports/protection': 'read',
  'GET /api/v1/restore-points/{id}': 'read',
  'DELETE /api/v1/restore-points/{id}': 'operate',
  'POST /api/v1/restore-points/{id}/purge': 'admin',
  'POST /api/v1/restore-points/{id}/undelete': 'admin',
  'GET /api/v1/recycle-bin': 'read',
  'POST /api/v1/restore-points/{id}/verify': 'operate',
  'GET /api/v1/vms/{vmId}/restore-points': 'read',
  'GET /api/v1/restore-points/{id}/disks/{diskId}/image': 'operate',
  'POST /api/v1/restore-points/{id}/exports': 'export',
  'GET /api/v1/restore-points/{id}/exports': 'read',
  'DELETE /api/v1/restore-point-exports/{exportId}': 'export',
  'POST /api/v1/restore/mounts': 'operate',
  'GET /api/v1/restore/mounts': 'read',
  'GET /api/v1/restore/mounts/{id}': 'read',
  'DELETE /api/v1/restore/mounts/{id}': 'operate',
  'GET /api/v1/restore/mounts/{id}/files': 'read',
  'GET /api/v1/restore/mounts/{id}/file': 'operate',
  'GET /api/v1/restore/mounts/{id}/archive': 'operate',
  'POST /api/v1/restores': 'operate',
  'POST /api/v1/restore-points/{id}/drill': 'operate',
  'GET /api/v1/restores': 'read',
  'GET /api/v1/restores/{restoreId}': 'read',
  'GET /api/v1/restores/{restoreId}/screenshot': 'read',
  'POST /api/v1/restores/{restoreId}/cancel': 'operate',
  'GET /api/v1/restores/{restoreId}/events': 'read',
  'POST /api/v1/restores/{restoreId}/agent-reports': 'agent',
  'GET /api/v1/restores/{restoreId}/disks/{diskId}/digests': 'agent',
  'POST /api/v1/policies': 'operate',
  'GET /api/v1/policies': 'read',
  'GET /api/v1/policies/matching-vms': 'read',
  'GET /api/v1/policies/{policyId}': 'read',
  'PUT /api/v1/policies/{policyId}': 'operate',
  'DELETE /api/v1/policies/{policyId}': 'operate',
  'POST /api/v1/policies/{policyId}/run': 'operate',
  'GET /api/v1/policies/{id}/prune-preview': 'read',
  'POST /api/v1/policies/{id}/prune': 'operate',
  'POST /api/v1/policies/simulate': 'read',
  'GET /api/v1/audit/streams/{streamId}': 'read',
  'GET /api/v1/audit/correlations/{correlationId}': 'read',
  'GET /api/v1/audit/events': 'read',
  'GET /api/v1/nbd/processes': 'read',
  'POST /api/v1/nbd/ports/allocate': 'admin',
  'DELETE /api/v1/nbd/ports/job/{jobId}': 'admin',
  'DELETE /api/v1/nbd/ports/{port}': 'admin',
  'GET /api/v1/nbd/ports': 'read',
  'GET /api/v1/nbd/ports/metrics': 'read',
  'GET /api/v1/live': 'read',
  'POST /api/v1/download-links': 'read',
  'GET /api/v1/schedule-preview': 'read',
  'PUT /api/v1/agents/{agentId}/tenant': 'admin',
  'PUT /api/v1/repositories/{id}/tenant': 'admin',
  'GET /api/v1/identity': 'any',
  'GET /api/v1/sync/restore-points': 'sync',
  'GET /api/v1/sync/restore-points/{id}/disks/{diskId}/digests': 'sync',
  'GET /api/v1/sync/restore-points/{id}/configuration': 'sync',
  'POST /api/v1/remotes': 'admin',
  'GET /api/v1/remotes': 'read',
  'GET /api/v1/remotes/{remoteId}': 'read',
  'PUT /api/v1/remotes/{remoteId}/token': 'admin',
  'POST /api/v1/sync-jobs': 'admin',
  'GET /api/v1/sync-jobs': 'read',
  'GET /api/v1/sync-jobs/{syncJobId}': 'read',
  'POST /api/v1/sync-jobs/{syncJobId}/run': 'operate',
};

type Operation = { key: string; method: string; path: string; access: unknown };

/** Every operation of the hub's OpenAPI document, called with each role's token: refused with 403 exactly where the role may not. */
describe('roles: every operation of the OpenAPI document for every role', () => {
  let hub: TestHub;
  let dir: string;
  let base: string;
  let operations: Operation[];
  const tokens = {} as Record<Role, string>;
  let agentId: string;

  beforeAll(async () => {
    hub = await startTestHub();
    base = await hub.url();
    tokens.admin = TEST_ADMIN_TOKEN;
    for (const role of ['operator', 'viewer', 'sync'] as const) {
      const issued = await hub.admin(hub.http().post('/api/v1/tokens')).send({ name: `a-${role}`, role }).expect(201);
      expect(issued.body).toMatchObject({ name: `a-${role}`, role });
      tokens[role] = issued.body.token;
    }
    dir = mkdtempSync(join(tmpdir(), 'sendense-access-'));
    const key = await generateAgentKey(join(dir, 'agent'));
    const agent = await hub.admin(hub.http().post('/api/v1/agents')).send({ name: 'walker', publicKey: key.publicKey }).expect(201);
    tokens.agent = agent.body.token;
    agentId = agent.body.agentId;
    const doc = await hub.admin(hub.http().get('/api/docs-json')).expect(200);
    operations = Object.entries(doc.body.paths as Record<string, Record<string, { 'x-sendense-access'?: unknown }>>).flatMap(([path, methods]) =>
      Object.entries(methods).map(([method, op]) => ({ key: `${method.toUpperCase()} ${path}`, method: method.toUpperCase(), path, access: op['x-sendense-access'] })),
    );
  });
  afterAll(async () => {
    await hub.close();
    rmSync(dir, { recursive: true, force: true });
  });

  it('the document states every operation\'s rule, and each is the one this table expects', () => {
    expect(Object.fromEntries(operations.map((o) => [o.key, o.access]))).toEqual(EXPECTED);
    for (const level of Object.values(EXPECTED)) expect(ACCESS_LEVELS).toContain(level);
  });

  /** Status only: an SSE answer is left unread. Ids are fresh UUIDs, so an allowed call finds nothing and changes nothing. */
  async function call(op: Operation, token: string): Promise<number> {
    const url = op.path.replace(/\{(\w+)\}/g, (_m, name: string) => (name === 'agentId' ? agentId : name === 'port' ? '1' : randomUUID()));
    const abort = new AbortController();
    const res = await fetch(base + url, {
      method: op.method,
      headers: { Authorization: `Bearer ${token}`, ...(op.method === 'GET' || op.method === 'DELETE' ? {} : { 'Content-Type': 'application/json' }) },
      body: op.method === 'GET' || op.method === 'DELETE' ? undefined : '{}',
      signal: abort.signal,
    });
    abort.abort();
    return res.status;
  }

  /** Let through, it ends the admin token every other test here uses: it is called last, on its own. */
  const ROTATE = 'POST /api/v1/tokens/admin/rotate';

  it.each(['admin', 'operator', 'viewer', 'agent', 'sync'] as const)('a %s token is refused (403) exactly where its role may not go', async (role) => {
    const seen: Record<string, string> = {};
    const expected: Record<string, string> = {};
    for (const op of operations.filter((o) => o.key !== ROTATE)) {
      const status = await call(op, tokens[role]);
      seen[op.key] = status === 403 ? 'refused' : status === 401 ? 'unauthenticated' : 'let through';
      expected[op.key] = roleMay(role, EXPECTED[op.key]) ? 'let through' : 'refused';
    }
    expect(seen).toEqual(expected);
  }, 60_000);

  it('says who a token is, refuses roles it does not know, and a viewer gets the reason for a refusal', async () => {
    for (const role of ['admin', 'operator', 'viewer', 'agent', 'sync'] as const) {
      const res = await fetch(`${base}/api/v1/session`, { headers: { Authorization: `Bearer ${tokens[role]}` } });
      expect(await res.json()).toEqual({ actor: { admin: 'admin', operator: 'a-operator', viewer: 'a-viewer', agent: 'agent-walker', sync: 'a-sync' }[role], role, tenantId: null });
    }
    for (const role of ['agent', 'root', '']) {
      const res = await hub.admin(hub.http().post('/api/v1/tokens')).send({ name: 'x', role }).expect(400);
      expect(res.body.message).toEqual(['role must be one of admin, operator, viewer, sync']);
    }
    const refused = await hub.http().post('/api/v1/backups').set('Authorization', `Bearer ${tokens.viewer}`).send({ vmId: 'vm1', repositoryId: randomUUID() }).expect(403);
    expect(refused.body.message).toBe('a viewer token may only read: this needs the operator or admin role');
    const listed = await hub.admin(hub.http().get('/api/v1/tokens')).expect(200);
    expect(Object.fromEntries(listed.body.map((t: { name: string; role: string }) => [t.name, t.role]))).toEqual({ 'a-operator': 'operator', 'a-viewer': 'viewer', 'a-sync': 'sync', 'agent-walker': 'agent' });
  });

  it('an admin-role token issued by the admin may manage tokens; a token issued without a role is an operator', async () => {
    const admin2 = (await hub.admin(hub.http().post('/api/v1/tokens')).send({ name: 'second-admin', role: 'admin' }).expect(201)).body.token;
    const plain = await hub.http().post('/api/v1/tokens').set('Authorization', `Bearer ${admin2}`).send({ name: 'plain' }).expect(201);
    expect(plain.body.role).toBe('operator');
    await hub.http().get('/api/v1/tokens').set('Authorization', `Bearer ${plain.body.token}`).expect(403);
  });

  it('only an admin token may rotate the admin token (checked last: it ends the admin token the tests above use)', async () => {
    const rotate = operations.find((o) => o.key === ROTATE)!;
    for (const role of ['operator', 'viewer', 'agent', 'sync'] as const) expect(await call(rotate, tokens[role])).toBe(403);
    expect(await call(rotate, tokens.admin)).toBe(201);
    expect(await call(rotate, tokens.admin)).toBe(401);
  });
});
