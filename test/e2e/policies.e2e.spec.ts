import { join } from 'node:path';
import { PolicyVmSelector } from '../../src/policies/policy.events';
import { selects } from '../../src/policies/retention/selection';
import { generateAgentKey } from '../../src/tunnel';
import { BackupLab, LAB_TOKEN } from '../support/backup-lab';
import { freePort, spawnSendense, SpawnedCli } from '../support/processes';

type Answer = { status: number; body: any };
type Recorded = { eventId: string; type: string; data: any; metadata: any };

/**
 * Policies on two real hub processes sharing one database, with one real agent connected to the first:
 * the scheduler on both hubs, the event store deciding which hub takes each slot, and every job running
 * on the hub that holds the agent's session, whichever hub fired the slot or accepted the request.
 */
describe('protection policies on two hub processes', () => {
  const lab = new BackupLab();
  let second: SpawnedCli | undefined;
  let secondUrl: string;
  let secondPort: number;

  const startSecond = async () => {
    second = await lab.startSecondHub(secondPort, { SENDENSE_NBD_PORTS: '14100-14131' });
  };

  beforeAll(async () => {
    await lab.start(undefined, undefined, true);
    secondPort = await freePort();
    secondUrl = `http://127.0.0.1:${secondPort}`;
    await startSecond();
  }, 120_000);
  afterAll(async () => {
    await lab.stop(second);
    await lab.close();
  }, 60_000);

  const viaSecond = (method: string, path: string, body?: unknown): Promise<Answer> => lab.apiAt(secondUrl, method, path, body);
  const stream = async (name: string) => (await lab.api('GET', `/api/v1/audit/streams/${name}?limit=1000`)).body.events as Recorded[];
  const policy = (over: Record<string, unknown> = {}) => ({
    name: 'every-10s',
    vms: { ids: ['vm1'] },
    repositoryId: lab.repositoryId,
    schedule: { cron: '*/10 * * * * *', timezone: 'Europe/Berlin' },
    retention: { keepLast: 1000 },
    rpoHours: 1,
    ...over,
  });

  it('refuses bad definitions with a clear 400, and keeps a policy through create, read, update and delete', async () => {
    const refused = async (body: unknown, reason: RegExp) => {
      const answer = await lab.api('POST', '/api/v1/policies', body);
      expect({ status: answer.status, message: String(answer.body.message) }).toEqual({ status: 400, message: expect.stringMatching(reason) });
    };
    await refused(policy({ schedule: { cron: '*/10 * * *', timezone: 'UTC' } }), /cron "\*\/10 \* \* \*" must have 5 fields/);
    await refused(policy({ schedule: { cron: '0 25 * * *', timezone: 'UTC' } }), /hour field "25" has 25, outside 0-23/);
    await refused(policy({ schedule: { cron: '0 2 * * *', timezone: 'Europe/Atlantis' } }), /time zone "Europe\/Atlantis" is not an IANA time zone/);
    await refused(policy({ retention: {} }), /retention needs at least one rule/);
    await refused(policy({ repositoryId: '3b241101-e2bb-4255-8caf-4136c566a962' }), /repositoryId 3b241101-e2bb-4255-8caf-4136c566a962: no such repository/);
    await refused(policy({ schedule: { cron: '0 2 * * *', timezone: 'UTC', catchUp: 'twice' } }), /catchUp must be one of the following values: once, skip/);
    await refused(policy({ colour: 'blue' }), /property colour should not exist/);
    await refused(policy({ drill: { cron: '0 25 * * *' } }), /drill: cron "0 25 \* \* \*": hour field "25"/);
    await refused(policy({ drill: { cron: '0 2 * * *', timeoutSeconds: 5 } }), /timeoutSeconds must not be less than 10/);
    await refused(policy({ drill: { cron: '0 2 * * *', agentId: 'host-1' } }), /drill.agentId must be a uuid/);

    const created = await lab.api('POST', '/api/v1/policies', policy({ name: 'nightly', schedule: { cron: '30 2 * * *', timezone: 'Europe/Berlin', catchUp: 'skip' }, fullEvery: 7, enabled: false }));
    expect(created.status).toBe(201);
    const { policyId } = created.body;
    expect(created.body).toMatchObject({ name: 'nightly', schedule: { cron: '30 2 * * *', timezone: 'Europe/Berlin', catchUp: 'skip' }, fullEvery: 7, retention: { keepLast: 1000 }, enabled: false, lastSlot: null });
    // The other hub reads the same policy.
    expect((await viaSecond('GET', `/api/v1/policies/${policyId}`)).body).toMatchObject({ policyId, name: 'nightly' });
    const updated = await viaSecond('PUT', `/api/v1/policies/${policyId}`, policy({ name: 'nightly', schedule: { cron: '45 3 * * *', timezone: 'America/New_York' }, enabled: false }));
    expect(updated).toMatchObject({ status: 200, body: { policyId, schedule: { cron: '45 3 * * *', timezone: 'America/New_York', catchUp: 'once' }, fullEvery: null, drill: null } });
    const drilled = await lab.api('PUT', `/api/v1/policies/${policyId}`, policy({ enabled: false, drill: { cron: '0 4 * * 0' } }));
    expect(drilled).toMatchObject({ status: 200, body: { policyId, drill: { cron: '0 4 * * 0', timeoutSeconds: 300 } } });
    expect(drilled.body.drill.agentId).toBeUndefined();
    expect((await lab.api('PUT', `/api/v1/policies/${policyId}`, policy({ retention: { keepDaily: 0 } }))).status).toBe(400);
    expect((await lab.api('GET', '/api/v1/policies')).body.map((p: { policyId: string }) => p.policyId)).toContain(policyId);
    expect(await lab.api('DELETE', `/api/v1/policies/${policyId}`)).toMatchObject({ status: 200, body: { policyId, deleted: true } });
    expect((await lab.api('GET', `/api/v1/policies/${policyId}`)).status).toBe(404);
    expect((await viaSecond('DELETE', `/api/v1/policies/${policyId}`)).status).toBe(404);
    expect((await stream(`policy-${policyId}`)).map((e) => e.type)).toEqual(['PolicyCreated', 'PolicyUpdated', 'PolicyUpdated', 'PolicyDeleted']);
  }, 60_000);

  it('runs a backup requested on the hub without the agent on the hub with it, and cancels from either hub', async () => {
    const requested = await viaSecond('POST', '/api/v1/backups', { vmId: 'vm1', repositoryId: lab.repositoryId });
    expect(requested.status).toBe(202);
    expect(await lab.waitForJob(requested.body.jobId, 60_000)).toMatchObject({ status: 'completed' });
    const started = (await lab.events(requested.body.jobId)).find((e) => e.type === 'BackupStarted')!;
    const instanceOfFirst = (await stream(`agent-${(await lab.api('GET', '/api/v1/vms')).body[0].agentId}`)).filter((e) => e.type === 'AgentConnected').at(-1)!.data.hubInstance;
    expect(started.data.hubInstance).toBe(instanceOfFirst);

    const jobId = await lab.backup('full');
    expect(await viaSecond('POST', `/api/v1/backups/${jobId}/cancel`)).toMatchObject({ status: 202, body: { jobId, cancelRequested: true } });
    expect(await lab.waitForJob(jobId, 60_000)).toMatchObject({ status: 'failed', error: 'cancelled' });
    expect(await lab.leftovers()).toEqual({ qemuNbd: [], leases: 0, strayFiles: [] });
  }, 120_000);

  it('a policy firing every 10 seconds: each slot makes exactly one completed backup, through a SIGKILL and a restart of one hub', async () => {
    const created = await viaSecond('POST', '/api/v1/policies', policy());
    expect(created.status).toBe(201);
    const { policyId } = created.body;
    const startedAt = Date.now();
    await new Promise((r) => setTimeout(r, 35_000));
    second!.child.kill('SIGKILL');
    await second!.exited;
    await new Promise((r) => setTimeout(r, 15_000));
    await startSecond();
    await new Promise((r) => setTimeout(r, Math.max(0, startedAt + 85_000 - Date.now())));
    expect((await lab.api('PUT', `/api/v1/policies/${policyId}`, policy({ enabled: false }))).status).toBe(200);

    const slots = await stream(`slots-policy-${policyId}`);
    const fired = slots.filter((e) => e.type === 'SlotFired').map((e) => e.data);
    expect(slots.filter((e) => e.type !== 'SlotFired')).toEqual([]);
    expect(fired.length).toBeGreaterThanOrEqual(7);
    // Every 10-second slot from the first to the last, each exactly once.
    const times = fired.map((f) => Date.parse(f.slot));
    expect(times).toEqual(times.map((_, i) => times[0] + i * 10_000));
    expect(new Set(fired.map((f) => f.jobId)).size).toBe(fired.length);
    for (const f of fired) expect(await lab.waitForJob(f.jobId, 60_000)).toMatchObject({ status: 'completed', vmId: 'vm1' });
    // No job besides the slots' ones was made for the VM while the policy ran.
    const jobs = (await lab.api('GET', '/api/v1/backups?vmId=vm1&limit=500')).body.jobs as { jobId: string; requestedAt: string }[];
    expect(jobs.filter((j) => Date.parse(j.requestedAt) >= startedAt).map((j) => j.jobId).sort()).toEqual(fired.map((f) => f.jobId).sort());
    process.stdout.write(`slots fired by hub: ${JSON.stringify(fired.reduce((n: Record<string, number>, f) => ({ ...n, [f.hubInstance]: (n[f.hubInstance] ?? 0) + 1 }), {}))}\n`);
    expect(await lab.leftovers()).toEqual({ qemuNbd: [], leases: 0, strayFiles: [] });
  }, 300_000);

  it('sendense policy add, list, edit, run and remove drive the same API', async () => {
    const cli = async (...args: string[]) => {
      const run = spawnSendense(['policy', ...args], { SENDENSE_HUB: secondUrl, SENDENSE_TOKEN: LAB_TOKEN });
      const { code } = await run.exited;
      return { code, output: run.output() };
    };
    const added = await cli('add', '--name', 'cli-weekly', '--repository', lab.repositoryId, '--cron', '0 4 * * SUN', '--timezone', 'America/New_York', '--vm', 'vm1', '--keep-last', '3', '--keep-weekly', '4', '--rpo-hours', '170', '--disabled', '--confirm-prune');
    expect(added).toMatchObject({ code: 0, output: expect.stringMatching(/cli-weekly  disabled  "0 4 \* \* SUN" America\/New_York \(catch-up once\)  vms: ids vm1  keep: keepLast=3 keepWeekly=4  rpo 170h/) });
    const policyId = added.output.split(' ')[0];
    expect((await cli('list')).output).toContain(policyId);
    expect((await cli('edit', policyId, '--keep-daily', '7')).output).toContain('keep: keepLast=3 keepDaily=7 keepWeekly=4');
    expect((await cli('edit', policyId, '--drill-cron', '0 5 * * SUN')).output).toContain('rpo 170h  drill "0 5 * * SUN"  last slot');
    expect((await cli('edit', policyId, '--drill-timeout', '60')).output).toContain('drill "0 5 * * SUN"');
    expect((await lab.api('GET', `/api/v1/policies/${policyId}`)).body.drill).toEqual({ cron: '0 5 * * SUN', timeoutSeconds: 60 });
    expect((await cli('edit', policyId, '--no-drill')).output).not.toContain('drill');
    expect(await cli('add', '--name', 'bad', '--repository', lab.repositoryId, '--cron', '0 4 * *', '--vm', 'vm1', '--keep-last', '1', '--rpo-hours', '1')).toMatchObject({ code: 1, output: expect.stringContaining('400 cron "0 4 * *" must have 5 fields') });
    const ran = await cli('run', policyId);
    expect(ran.output).toMatch(/^vm1  backup job [0-9a-f-]{36}\n$/);
    expect(await lab.waitForJob(ran.output.trim().split(' ').at(-1)!, 60_000)).toMatchObject({ status: 'completed' });
    expect(await cli('remove', policyId)).toMatchObject({ code: 0, output: `policy ${policyId} removed; its restore points stay\n` });
  }, 120_000);

  it('POST /policies/{id}/run backs up every VM of the policy now, on whichever hub it is sent to', async () => {
    const { policyId } = (await lab.api('POST', '/api/v1/policies', policy({ name: 'manual', schedule: { cron: '0 3 1 1 *', timezone: 'UTC' } }))).body;
    const run = await viaSecond('POST', `/api/v1/policies/${policyId}/run`);
    expect(run).toMatchObject({ status: 202, body: { policyId, jobs: [{ vmId: 'vm1', status: 'requested', reason: null }] } });
    expect(await lab.waitForJob(run.body.jobs[0].jobId, 60_000)).toMatchObject({ status: 'completed' });
    expect((await viaSecond('POST', '/api/v1/policies/6c7e1a1e-0f4e-4d2a-9a3c-1b2c3d4e5f60/run')).status).toBe(404);
  }, 120_000);

  it("one slot's jobs are stories of their own: a job's audit holds its events and none of its sibling's, and names its slot as the cause", async () => {
    await lab.until(async () => ((await lab.api('GET', '/api/v1/vms')).body as { vmId: string }[]).some((v) => v.vmId === 'vm2'), 30_000, 'the agent to report vm2');
    const { policyId } = (await lab.api('POST', '/api/v1/policies', policy({ name: 'two-vms', vms: { ids: ['vm1', 'vm2'] }, schedule: { cron: '0 3 1 1 *', timezone: 'UTC' } }))).body;
    const run = await lab.api('POST', `/api/v1/policies/${policyId}/run`);
    expect(run.status).toBe(202);
    const jobs = run.body.jobs as { vmId: string; jobId: string }[];
    expect(jobs.map((j) => j.vmId).sort()).toEqual(['vm1', 'vm2']);
    for (const { jobId } of jobs) expect(await lab.waitForJob(jobId, 90_000)).toMatchObject({ status: 'completed' });
    const fired = (await stream(`slots-policy-${policyId}`)).filter((e) => e.type === 'SlotFired');
    expect(fired).toHaveLength(2);
    const stories = new Map<string, Recorded[]>();
    for (const { jobId } of jobs) stories.set(jobId, (await lab.api('GET', `/api/v1/audit/events?jobId=${jobId}&limit=1000`)).body.events as Recorded[]);
    for (const [jobId, story] of stories) {
      const sibling = jobs.find((j) => j.jobId !== jobId)!.jobId;
      expect(story.map((e) => e.type)).toEqual(expect.arrayContaining(['BackupRequested', 'BackupStarted', 'RestorePointAdded', 'BackupCompleted']));
      expect(story.filter((e) => JSON.stringify(e).includes(sibling)).map((e) => e.type)).toEqual([]);
      const cause = fired.find((e) => e.data.jobId === jobId)!;
      expect(story[0]).toMatchObject({ type: 'BackupJobClaimed', metadata: { causationId: cause.eventId } });
      expect(story.find((e) => e.type === 'BackupRequested')).toMatchObject({ data: { jobId }, metadata: { causationId: cause.eventId } });
      expect(story[0].metadata.correlationId).not.toBe(cause.metadata.correlationId);
      expect(new Set(story.map((e) => e.metadata.correlationId))).toEqual(new Set([story[0].metadata.correlationId]));
    }
  }, 180_000);

  it('drills scheduled by a policy are taken once per slot, by the hub holding the drill host\'s agent, and a refused drill is recorded on its slot with the reason', async () => {
    await lab.waitForJob(await lab.backup('full'), 60_000);
    const [vm] = (await lab.api('GET', '/api/v1/vms')).body as { agentId: string }[];
    const { policyId } = (await viaSecond('POST', '/api/v1/policies', policy({ name: 'drills', schedule: { cron: '0 3 1 1 *', timezone: 'UTC' }, drill: { cron: '*/5 * * * * *', timeoutSeconds: 60 } }))).body;
    const startedAt = Date.now();
    await lab.until(async () => (await stream(`drill-slots-policy-${policyId}-agent-${vm.agentId}`)).filter((e) => e.type === 'DrillSlotSkipped').length >= 3, 60_000, 'three drill slots');
    expect((await lab.api('PUT', `/api/v1/policies/${policyId}`, policy({ name: 'drills', schedule: { cron: '0 3 1 1 *', timezone: 'UTC' }, enabled: false }))).status).toBe(200);
    await new Promise((r) => setTimeout(r, 1500));
    const slots = await stream(`drill-slots-policy-${policyId}-agent-${vm.agentId}`);
    const fired = slots.filter((e) => e.type === 'DrillSlotFired');
    const instanceOfAgentHub = (await stream(`agent-${vm.agentId}`)).filter((e) => e.type === 'AgentConnected').at(-1)!.data.hubInstance;
    // one drill per 5-second slot, each fired by the hub with the agent's session
    const times = fired.map((e) => Date.parse(e.data.slot));
    expect(times.length).toBeGreaterThanOrEqual(3);
    expect(times).toEqual(times.map((_, i) => times[0] + i * 5000));
    expect(times[0]).toBeGreaterThanOrEqual(startedAt - 5000);
    const newest = ((await lab.api('GET', '/api/v1/vms/vm1/restore-points')).body as { restorePointId: string }[]).at(-1)!.restorePointId;
    for (const f of fired) {
      expect(f.data).toMatchObject({ policyId, agentId: vm.agentId, vmId: 'vm1', restorePointId: newest, hubInstance: instanceOfAgentHub, catchUp: false });
      // the qemu-image source records no VM configuration: the drill's request is refused and the slot says why, under the slot's correlation id
      const skipped = slots.find((e) => e.type === 'DrillSlotSkipped' && e.data.restoreId === f.data.restoreId)!;
      expect(skipped.data.reason).toBe(`restore point ${newest} holds no VM configuration: give definition {memoryMiB, vcpus}`);
      expect(skipped.metadata.correlationId).toBe(f.metadata.correlationId);
      expect((await lab.api('GET', `/api/v1/restores/${f.data.restoreId}`)).status).toBe(404);
    }
    expect(slots.filter((e) => !['DrillSlotFired', 'DrillSlotSkipped'].includes(e.type))).toEqual([]);
  }, 120_000);

  // last: the VMs it adds would be selected by nothing above, but the tests above read the VM list's first VM
  it('GET /policies/matching-vms answers what the hub\'s own selection picks among the VMs reported now, on either hub, and refuses hostile selectors (400)', async () => {
    // a second agent's inventory, no process behind it: names for the globs to tell apart
    const key = await generateAgentKey(join(lab.dir, 'inventory-only-agent'));
    const other = (await lab.api('POST', '/api/v1/agents', { name: 'inventory-only', publicKey: key.publicKey })).body as { agentId: string };
    const disk = { diskId: 'disk0', path: '/images/x.qcow2', format: 'qcow2', virtualSize: 1 << 30, changeTracking: 'dirty-bitmap' };
    const inventory = { vms: ['web-1', 'web-2', 'web-10', 'db-1'].map((name) => ({ vmId: `${name}-id`, name, disks: [disk] })) };
    expect((await lab.api('PUT', `/api/v1/agents/${other.agentId}/inventory`, inventory)).status).toBe(200);
    const vms = (await lab.api('GET', '/api/v1/vms')).body as { vmId: string; name: string; agentId: string }[];
    const picked = (selector: PolicyVmSelector) => vms.filter((vm) => selects(selector, vm)).map(({ vmId, name, agentId }) => ({ vmId, name, agentId }));
    expect(picked({ namePattern: 'web-?' }).map((v) => v.name)).toEqual(['web-1', 'web-2']);
    const cases: [string, PolicyVmSelector][] = [
      ['namePattern=web-%3F', { namePattern: 'web-?' }],
      ['namePattern=web-*', { namePattern: 'web-*' }],
      ['namePattern=*1', { namePattern: '*1' }],
      [`agentId=${other.agentId}`, { agentId: other.agentId }],
      [`ids=vm1,db-1-id,gone&namePattern=*1&agentId=${other.agentId}`, { ids: ['vm1', 'db-1-id', 'gone'], namePattern: '*1', agentId: other.agentId }],
      ['ids=vm1,web-2-id', { ids: ['vm1', 'web-2-id'] }],
      ['', {}],
    ];
    for (const [query, selector] of cases) {
      expect({ query, ...(await viaSecond('GET', `/api/v1/policies/matching-vms?${query}`)) }).toEqual({ query, status: 200, body: picked(selector) });
    }
    // a pattern a backtracking RegExp would chew on for hours is answered at once
    const started = Date.now();
    expect(await lab.api('GET', `/api/v1/policies/matching-vms?namePattern=${'*'.repeat(199)}x`)).toEqual({ status: 200, body: [] });
    expect(Date.now() - started).toBeLessThan(2000);
    for (const query of [`namePattern=${'a'.repeat(201)}`, 'namePattern=', 'namePattern=a&namePattern=b', 'ids=../etc', 'ids=a,,b', 'ids=', `ids=${Array.from({ length: 1001 }, (_, i) => `v${i}`).join(',')}`, 'agentId=host-1', 'bogus=1']) {
      expect({ query, status: (await lab.api('GET', `/api/v1/policies/matching-vms?${query}`)).status }).toEqual({ query, status: 400 });
    }
  }, 60_000);
});
