import { randomUUID } from 'node:crypto';
import { mkdirSync, mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { eventCount, startTestHub, TestHub } from '../../test/support/test-hub';
import { ProjectionsService } from '../projection-runner/projections.service';
import { chainStream, RESTORE_POINT_ADDED } from '../restore-points/chain.events';
import { generateAgentKey } from '../tunnel';

/**
 * A stolen operator token cannot empty a VM's history with one policy edit: retention rules that would prune more
 * than half of a VM's points are refused unless confirmed, on a real hub whose VM has a chain of four points.
 */
describe('policies: a change that would prune more than half of a VM\'s points needs confirmPrune', () => {
  let hub: TestHub;
  let dir: string;
  let repositoryId = '';
  let operator = '';

  beforeAll(async () => {
    hub = await startTestHub();
    dir = mkdtempSync(join(tmpdir(), 'sendense-mass-prune-'));
    const key = await generateAgentKey(join(dir, 'agent'));
    const agent = (await hub.admin(hub.http().post('/api/v1/agents')).send({ name: 'host', publicKey: key.publicKey }).expect(201)).body;
    await hub.http().put(`/api/v1/agents/${agent.agentId}/inventory`).set('Authorization', `Bearer ${agent.token}`).send({ vms: [{ vmId: 'vm1', name: 'web-1', disks: [] }] }).expect(200);
    mkdirSync(join(dir, 'repo'));
    repositoryId = (await hub.admin(hub.http().post('/api/v1/repositories')).send({ name: 'r', kind: 'local', path: join(dir, 'repo') }).expect(201)).body.repositoryId;
    operator = (await hub.admin(hub.http().post('/api/v1/tokens')).send({ name: 'ops', role: 'operator' }).expect(201)).body.token;
    let parentId: string | null = null;
    let position: string | null = null;
    for (let day = 1; day <= 4; day++) {
      const restorePointId = `rp-${day}`;
      const point = { restorePointId, vmId: 'vm1', repositoryId, backupId: null, type: parentId ? 'incremental' : 'full', parentId, createdAt: `2026-11-0${day}T02:00:00Z`, disks: [] };
      position = (await hub.db.store.append(chainStream('vm1', repositoryId), [{ type: RESTORE_POINT_ADDED, data: point, metadata: { correlationId: randomUUID(), causationId: randomUUID(), actor: 'test', schemaVersion: 1 } }])).position;
      parentId = restorePointId;
    }
    await hub.app.get(ProjectionsService).waitFor('protection-report', position);
  });
  afterAll(async () => {
    await hub.close();
    rmSync(dir, { recursive: true, force: true });
  });

  const policy = (keepLast: number, more: object = {}) => ({ name: 'nightly', vms: { ids: ['vm1'] }, repositoryId, schedule: { cron: '0 2 * * *', timezone: 'UTC' }, retention: { keepLast }, rpoHours: 26, ...more });
  const as = (method: 'post' | 'put', path: string) => hub.http()[method](path).set('Authorization', `Bearer ${operator}`);

  it('refuses to create or change rules that would prune 3 of 4 points, recording nothing, until confirmed', async () => {
    const before = await eventCount(hub.db);
    const refused = await as('post', '/api/v1/policies').send(policy(1)).expect(409);
    expect(refused.body.message).toBe('these retention rules would prune 3 of the 4 restore points of VM vm1, more than half: send confirmPrune: true to apply them');
    expect(await eventCount(hub.db)).toBe(before);

    const kept = (await as('post', '/api/v1/policies').send(policy(2)).expect(201)).body;
    expect(kept.retention).toEqual({ keepLast: 2 });
    await as('put', `/api/v1/policies/${kept.policyId}`).send(policy(1)).expect(409);
    const confirmed = (await as('put', `/api/v1/policies/${kept.policyId}`).send(policy(1, { confirmPrune: true })).expect(200)).body;
    expect(confirmed.retention).toEqual({ keepLast: 1 });
    expect(JSON.stringify(confirmed)).not.toContain('confirmPrune');
    await as('put', `/api/v1/policies/${kept.policyId}`).send(policy(1, { confirmPrune: 'yes' })).expect(400);
    // rules that already prune that much are not asked about again when something else of the policy changes
    expect((await as('put', `/api/v1/policies/${kept.policyId}`).send(policy(1, { rpoHours: 30 })).expect(200)).body.rpoHours).toBe(30);
    await as('put', `/api/v1/policies/${kept.policyId}`).send(policy(2)).expect(200);
    await as('put', `/api/v1/policies/${kept.policyId}`).send(policy(1)).expect(409);
  });

  it('leaves a definition the hub refuses anyway to its own 400', async () => {
    const refused = await as('post', '/api/v1/policies').send(policy(1, { schedule: { cron: '0 2 * *', timezone: 'UTC' } })).expect(400);
    expect(refused.body.message).toMatch(/cron "0 2 \* \*" must have 5 fields/);
    const unknown = await as('post', '/api/v1/policies').send(policy(1, { repositoryId: '6c7e1a1e-0f4e-4d2a-9a3c-1b2c3d4e5f60' }));
    expect(unknown.status).toBe(400);
  });
});
