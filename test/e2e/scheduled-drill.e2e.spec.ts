import { readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { GuestDomain, startGuest, virsh } from '../fixtures/libvirt/libvirt-guest';
import { LibvirtHost } from '../support/libvirt-host';
import { LibvirtLab } from '../support/libvirt-lab';
import { freePort, processesMentioning, SpawnedCli } from '../support/processes';

type Recorded = { eventId: string; type: string; data: any; metadata: any };

/**
 * A drill a policy schedules that passes: a running TCG guest with its guest agent under a real libvirtd, backed up
 * by a real hub and agent, drilled at slots of the policy's calendar while two hub processes share one database and
 * both run the drill scheduler. Each slot is drilled exactly once, by the hub holding the agent's session at the time
 * (the first hub, then the second once the agent moved to it), and each drill boots the point and passes.
 */
describe('scheduled drills that pass, on two hub processes sharing one database', () => {
  // the hubs look every second for work a gone hub process left (the last test)
  const lab = new LibvirtLab({ SENDENSE_GONE_HUB_CHECK_S: '1', SENDENSE_GONE_HUB_AFTER_S: '3' });
  const host = new LibvirtHost('sendense-drill-guests-');
  let guest: GuestDomain | undefined;
  let second: SpawnedCli | undefined;
  let secondUrl = '';
  let secondSshPort = 0;
  let agentId = '';
  let pointId = '';

  beforeAll(async () => {
    await host.open();
    guest = await startGuest({ name: `sendense-scheduled-${process.pid}`, dir: join(host.dir, 'g'), agent: true });
    lab.vmIds = [guest.uuid];
    lab.consoleLogs = [guest.console];
    await lab.start();
    agentId = await lab.agentId();
    pointId = (await lab.waitForJob(await lab.backup('full', guest.uuid), 180_000)).restorePointId;

    const apiPort = await freePort();
    secondUrl = `http://127.0.0.1:${apiPort}`;
    secondSshPort = await freePort();
    second = await lab.startSecondHub(apiPort, { SENDENSE_NBD_PORTS: '14240-14271' }, secondSshPort);
  }, 600_000);

  afterAll(async () => {
    await lab.stop(second);
    await host.close(lab, { guest });
  }, 120_000);

  const viaSecond = (method: string, path: string, body?: unknown) => lab.apiAt(secondUrl, method, path, body);
  /** A calendar with one slot a year: at `at` (UTC, whole seconds), so the test knows every slot there is. */
  const onceAt = (at: Date) => `${at.getUTCSeconds()} ${at.getUTCMinutes()} ${at.getUTCHours()} ${at.getUTCDate()} ${at.getUTCMonth() + 1} *`;
  const policy = (drillAt: Date) => ({
    name: `scheduled-drills-${process.pid}`,
    vms: { ids: [guest!.uuid] },
    repositoryId: lab.repositoryId,
    schedule: { cron: '0 3 1 1 *', timezone: 'UTC' },
    retention: { keepLast: 100 },
    rpoHours: 26,
    drill: { cron: onceAt(drillAt), timeoutSeconds: 240 },
  });
  const slots = async (policyId: string) => (await lab.api('GET', `/api/v1/audit/streams/drill-slots-policy-${policyId}-agent-${agentId}?limit=1000`)).body.events as Recorded[];
  const drillsOfVm = async () => ((await lab.api('GET', `/api/v1/restores?vmId=${guest!.uuid}`)).body as { restoreId: string; target: { kind: string } }[]).filter((r) => r.target.kind === 'drill');
  const instanceAt = async (baseUrl: string) => (await lab.apiAt(baseUrl, 'GET', '/api/v1/identity')).body.hubInstance as string;

  const waitForRestore = (restoreId: string) => lab.waitForRestore(restoreId, 400_000);

  /** The slot at `at` fired once, by `hubInstance`; its drill of the newest point passed, a story of its own caused by the slot. */
  async function slotDrilledOnce(policyId: string, at: Date, hubInstance: string): Promise<Recorded> {
    let fired: Recorded[] = [];
    await lab.until(async () => (fired = (await slots(policyId)).filter((e) => e.type === 'DrillSlotFired' && Date.parse(e.data.slot) === at.getTime())).length > 0, 60_000, `the drill slot at ${at.toISOString()} to fire`);
    const done = await waitForRestore(fired[0].data.restoreId);
    expect(fired[0].data).toMatchObject({ policyId, agentId, vmId: guest!.uuid, restorePointId: pointId, hubInstance, catchUp: false });
    expect(done).toMatchObject({ status: 'completed', restorePointId: pointId, mode: 'instant', target: { kind: 'drill', timeoutSeconds: 240 }, drill: { passed: true, reason: null, consistency: 'application' } });
    expect(done.drill.bootMs).toBeGreaterThan(0);
    const story = (await lab.api('GET', `/api/v1/audit/streams/vm-restore-${fired[0].data.restoreId}`)).body.events as Recorded[];
    expect(story[0]).toMatchObject({ type: 'RestoreRequested', metadata: { causationId: fired[0].eventId } });
    expect(story[0].metadata.correlationId).not.toBe(fired[0].metadata.correlationId);
    expect(story.at(-1)).toMatchObject({ type: 'RecoveryDrillPassed', data: { restorePointId: pointId, vmId: guest!.uuid, bootMs: done.drill.bootMs }, metadata: { correlationId: story[0].metadata.correlationId } });
    // both hubs tick every second: a slot taken twice would show here within a few ticks
    await new Promise((r) => setTimeout(r, 5000));
    expect((await slots(policyId)).filter((e) => e.type === 'DrillSlotFired' && Date.parse(e.data.slot) === at.getTime())).toHaveLength(1);
    return fired[0];
  }

  it("each slot is drilled exactly once, by the hub holding the agent's session, and the drill passes; after the agent moves to the other hub, that hub takes the next slot", async () => {
    const [first, other] = [await instanceAt(`http://127.0.0.1:${lab.apiPort}`), await instanceAt(secondUrl)];
    expect(first).not.toBe(other);
    // the policy is written through the hub that does not hold the agent: the scheduler reads it from the shared database
    const firstSlot = new Date(Math.ceil((Date.now() + 15_000) / 1000) * 1000);
    const created = await viaSecond('POST', '/api/v1/policies', policy(firstSlot));
    expect(created.status).toBe(201);
    const { policyId } = created.body;
    const firstFired = await slotDrilledOnce(policyId, firstSlot, first);

    // the agent now dials the second hub (its API, SSH port and host key), and the first holds no session of it
    await lab.stop(lab.agent);
    const stateFile = join(lab.dir, 'agent', 'agent.json');
    const state = JSON.parse(readFileSync(stateFile, 'utf8'));
    const { ssh } = (await viaSecond('GET', '/api/v1/identity')).body;
    writeFileSync(stateFile, JSON.stringify({ ...state, hubUrl: secondUrl, ssh: { ...state.ssh, port: secondSshPort, hostKeyFingerprint: ssh.hostKeyFingerprint } }), { mode: 0o600 });
    await lab.startAgent();
    const connectedTo = (await lab.api('GET', `/api/v1/audit/streams/agent-${agentId}`)).body.events.filter((e: Recorded) => e.type === 'AgentConnected').at(-1).data.hubInstance;
    expect(connectedTo).toBe(other);

    const nextSlot = new Date(Math.ceil((Date.now() + 15_000) / 1000) * 1000);
    expect((await lab.api('PUT', `/api/v1/policies/${policyId}`, policy(nextSlot))).status).toBe(200);
    const nextFired = await slotDrilledOnce(policyId, nextSlot, other);

    // the policy's whole record: two slots, each fired once, nothing skipped, and exactly the two drills they started
    const record = await slots(policyId);
    expect(record.map((e) => [e.type, Date.parse(e.data.slot)])).toEqual([
      ['DrillSlotFired', firstSlot.getTime()],
      ['DrillSlotFired', nextSlot.getTime()],
    ]);
    expect((await drillsOfVm()).map((r) => r.restoreId).sort()).toEqual([firstFired.data.restoreId, nextFired.data.restoreId].sort());
    const report = await lab.protectionOf(guest!.uuid, (r) => r?.drill?.lastPassed === true);
    expect(report.drill).toMatchObject({ lastPassed: true, restorePointId: pointId });
    // nothing stays: no drill domain, no lease on either hub
    expect((await virsh('list', '--all', '--name')).split('\n').filter((n) => n.startsWith('sendense-drill-'))).toEqual([]);
    expect((await lab.api('GET', '/api/v1/nbd/ports')).body).toEqual([]);
    expect((await lab.api('DELETE', `/api/v1/policies/${policyId}`)).status).toBe(200);
  }, 900_000);

  it('a restore running on a hub process that is then gone for good (its host lost) is failed by the other hub, naming that process', async () => {
    // since the test above the agent's session is with the second hub
    const gone = await instanceAt(secondUrl);
    const name = `sendense-gone-restore-${process.pid}`;
    host.domains.push(name);
    const requested = await viaSecond('POST', '/api/v1/restores', { agentId, restorePointId: pointId, mode: 'full', target: { kind: 'new-domain', name, storageDir: host.dir } });
    expect(requested.status).toBe(202);
    const { restoreId } = requested.body;
    const events = async () => (await lab.api('GET', `/api/v1/audit/streams/vm-restore-${restoreId}?limit=1000`)).body.events as Recorded[];
    await lab.until(async () => (await events()).some((e) => e.type === 'RestoreStarted'), 120_000, 'the restore to start');
    lab.agent!.child.kill('SIGSTOP');
    expect((await events()).find((e) => e.type === 'RestoreStarted')!.data.hubInstance).toBe(gone);
    // the second hub's host is lost: the hub, the exports it serves the restore from, and the agent dialling it
    second!.child.kill('SIGKILL');
    await second!.exited;
    for (const p of processesMentioning(join(lab.dir, 'hub-b')).filter((p) => p.cmdline.includes('qemu-nbd'))) process.kill(p.pid, 'SIGKILL');
    lab.agent!.child.kill('SIGKILL');
    await lab.agent!.exited;

    const done = await lab.waitForRestore(restoreId, 60_000);
    expect(done).toMatchObject({ status: 'failed', error: `left during writing by hub process ${gone}, which stopped and did not come back` });
    expect((await events()).at(-1)!.type).toBe('RestoreFailed');
    // its ports are released, and the agent's session through that process reads ended
    expect((await lab.api('GET', '/api/v1/nbd/ports')).body).toEqual([]);
    await lab.until(async () => (await lab.api('GET', '/api/v1/agents')).body.every((a: { connected: boolean }) => !a.connected), 30_000, 'the agent to read disconnected');
  }, 300_000);
});
