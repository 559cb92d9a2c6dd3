import { execFile } from 'node:child_process';
import { mkdirSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { promisify } from 'node:util';
import { BackupLab, LAB_TOKEN } from '../support/backup-lab';
import { spawnSendense, SpawnedCli } from '../support/processes';

const run = promisify(execFile);

/**
 * A compromised agent host of tenant beta reports tenant acme's vmId, on a real hub process with two real agent
 * processes: the hub refuses the claim and records it; acme keeps its VM, its points and its next backups, and
 * beta's tokens find none of them, before or after the intruder drops the VM again.
 */
describe('security: an agent cannot take another tenant\'s VM', () => {
  const lab = new BackupLab();
  let intruder: SpawnedCli | undefined;
  let intruderId = '';
  let ownerId = '';
  let firstPoint = '';
  const tokens = { betaViewer: '', betaOperator: '', acmeViewer: '' };

  const as = async (token: string, method: string, path: string, body?: unknown) => {
    const res = await fetch(`http://127.0.0.1:${lab.apiPort}${path}`, { method, headers: { Authorization: `Bearer ${token}`, 'Content-Type': 'application/json' }, body: body === undefined ? undefined : JSON.stringify(body) });
    const text = await res.text();
    return { status: res.status, body: text ? JSON.parse(text) : null };
  };
  const vm1 = async () => ((await lab.api('GET', '/api/v1/vms')).body as { vmId: string; agentId: string; disks: { path: string }[] }[]).find((v) => v.vmId === 'vm1');

  beforeAll(async () => {
    await lab.start();
    const full = await lab.waitForJob(await lab.backup('full'));
    expect(full.status).toBe('completed');
    firstPoint = full.restorePointId;
    ownerId = (await vm1())!.agentId;

    const intruderDir = join(lab.dir, 'intruder');
    const env = { SENDENSE_TOKEN: LAB_TOKEN, SENDENSE_AGENT_DIR: intruderDir, SENDENSE_LOG_LEVEL: 'warn' };
    const registered = spawnSendense(['agent', 'register', '--hub', `http://127.0.0.1:${lab.apiPort}`, '--name', 'beta-host'], env);
    expect((await registered.exited).code).toBe(0);
    intruderId = ((await lab.api('GET', '/api/v1/agents')).body as { agentId: string; name: string }[]).find((a) => a.name === 'beta-host')!.agentId;

    expect((await lab.api('PUT', `/api/v1/agents/${ownerId}/tenant`, { tenantId: 'acme' })).status).toBe(200);
    expect((await lab.api('PUT', `/api/v1/repositories/${lab.repositoryId}/tenant`, { tenantId: 'acme' })).status).toBe(200);
    expect((await lab.api('PUT', `/api/v1/agents/${intruderId}/tenant`, { tenantId: 'beta' })).status).toBe(200);
    for (const [who, tenantId, role] of [['betaViewer', 'beta', 'viewer'], ['betaOperator', 'beta', 'operator'], ['acmeViewer', 'acme', 'viewer']] as const) {
      tokens[who] = (await lab.api('POST', '/api/v1/tokens', { name: who.toLowerCase(), role, tenantId })).body.token;
    }

    // the intruder's host has a disk of its own that it names as acme's vm1
    mkdirSync(join(intruderDir, 'disks'), { recursive: true });
    const [disk, own] = ['vm1', 'beta-vm'].map((name) => join(intruderDir, 'disks', `${name}.qcow2`));
    for (const file of [disk, own]) await run('qemu-img', ['create', '-q', '-f', 'qcow2', file, '64M']);
    const inventory = join(intruderDir, 'inventory.json');
    writeFileSync(inventory, JSON.stringify({ vms: [{ id: 'vm1', name: 'vm1', disks: [{ id: 'disk0', path: disk }] }, { id: 'beta-vm', name: 'beta-vm', disks: [{ id: 'disk0', path: own }] }] }));
    intruder = spawnSendense(['agent', 'run', '--inventory', inventory], env);
    await lab.until(async () => ((await lab.api('GET', '/api/v1/vm-ownership-conflicts')).body as unknown[]).length > 0, 30_000, 'the intruder\'s report to be refused').catch((e: Error) => {
      throw new Error(`${e.message}\nintruder output:\n${intruder!.output().slice(-3000)}`);
    });
  }, 180_000);
  afterAll(async () => {
    await lab.stop(intruder);
    await lab.close();
  });

  it('refuses the claim, records it as an event, and the intruder is told', async () => {
    expect((await lab.api('GET', '/api/v1/vm-ownership-conflicts')).body).toEqual([{ vmId: 'vm1', ownerAgentId: ownerId, claimantAgentId: intruderId, refusedAt: expect.any(String) }]);
    const story = (await lab.api('GET', '/api/v1/audit/streams/vm-owner-vm1')).body.events.map((e: { type: string; data: unknown }) => [e.type, e.data]);
    expect(story).toEqual([
      ['VmClaimed', { vmId: 'vm1', agentId: ownerId }],
      ['VmClaimRefused', { vmId: 'vm1', ownerAgentId: ownerId, claimantAgentId: intruderId }],
    ]);
    await lab.until(async () => intruder!.output().includes('the hub refused VM vm1'), 10_000, 'the intruder to log the refusal');
    expect((await vm1())).toMatchObject({ agentId: ownerId, disks: [{ path: lab.vm.disks[0].path }, { path: lab.vm.disks[1].path }] });
  });

  it('leaves beta\'s tokens finding nothing of acme\'s VM, and acme\'s viewer everything', async () => {
    expect((await as(tokens.betaViewer, 'GET', `/api/v1/restore-points/${firstPoint}`)).status).toBe(404);
    expect((await as(tokens.betaViewer, 'GET', `/api/v1/vms/vm1/restore-points?repositoryId=${lab.repositoryId}`)).status).toBe(404);
    expect((await as(tokens.betaViewer, 'GET', '/api/v1/vms')).body.map((v: { vmId: string }) => v.vmId)).toEqual(['beta-vm']);
    expect((await as(tokens.betaOperator, 'POST', '/api/v1/restore/mounts', { restorePointId: firstPoint, diskId: 'disk0' })).status).toBe(404);
    expect((await as(tokens.acmeViewer, 'GET', `/api/v1/restore-points/${firstPoint}`)).status).toBe(200);
  });

  it('keeps acme\'s next backups with acme\'s agent and disks, also after the intruder drops the VM', async () => {
    const next = await lab.waitForJob(await lab.backup('incremental'));
    expect(next).toMatchObject({ status: 'completed', agentId: ownerId });
    await lab.stop(intruder);
    writeFileSync(join(lab.dir, 'intruder', 'inventory.json'), JSON.stringify({ vms: [] }));
    intruder = spawnSendense(['agent', 'run', '--inventory', join(lab.dir, 'intruder', 'inventory.json')], { SENDENSE_TOKEN: LAB_TOKEN, SENDENSE_AGENT_DIR: join(lab.dir, 'intruder'), SENDENSE_LOG_LEVEL: 'warn' });
    const reports = async () => ((await lab.api('GET', `/api/v1/audit/streams/agent-${intruderId}`)).body.events as { type: string; data: { vms: { vmId: string }[] } }[]).filter((e) => e.type === 'VmInventoryReported').map((e) => e.data.vms.map((v) => v.vmId));
    await lab.until(async () => JSON.stringify(await reports()) === JSON.stringify([['beta-vm'], []]), 30_000, 'the intruder to report that it dropped its VMs');
    expect((await lab.api('GET', '/api/v1/vms')).body.map((v: { vmId: string }) => v.vmId)).toEqual(['vm1']);
    expect(await vm1()).toMatchObject({ agentId: ownerId });
    const after = await lab.waitForJob(await lab.backup('incremental'));
    expect(after).toMatchObject({ status: 'completed', agentId: ownerId });
    expect((await as(tokens.acmeViewer, 'GET', `/api/v1/vms/vm1/restore-points?repositoryId=${lab.repositoryId}`)).body).toHaveLength(3);
  });
});
