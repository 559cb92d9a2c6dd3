import { execFile } from 'node:child_process';
import { existsSync, mkdirSync, readdirSync, readFileSync } from 'node:fs';
import { open } from 'node:fs/promises';
import { join } from 'node:path';
import { promisify } from 'node:util';
import { GuestDomain, guestHasFile, startGuest, virsh } from '../fixtures/libvirt/libvirt-guest';
import { LAB_TOKEN } from '../support/backup-lab';
import { LibvirtHost } from '../support/libvirt-host';
import { LibvirtLab } from '../support/libvirt-lab';
import { processesMentioning, spawnSendense } from '../support/processes';

const run = promisify(execFile);
const MiB = 1024 * 1024;

/**
 * Getting a VM back: a running 2-disk TCG guest under a real libvirtd is backed up (full + incremental) by a
 * real hub and agent, then restored through the agent into its shut-off original and as a new domain that
 * boots; corrupt points, a killed agent and a full disk end restores with a reason and leave nothing behind.
 */
describe('restoring whole VMs to libvirt through the agent', () => {
  const lab = new LibvirtLab();
  const host = new LibvirtHost('sendense-restore-guests-');
  let guest: GuestDomain | undefined;
  let agentId = '';
  let fullId = '';
  let incId = '';
  /** A shut-off domain whose disk holds nothing bootable, made by the drill test. */
  let blankUuid = '';

  beforeAll(async () => {
    await host.open({ storage: true });
    guest = await startGuest({ name: `sendense-restore-${process.pid}`, dir: join(host.dir, 'g'), agent: true, d1Mib: 320, fillD1Mib: 256 });
    lab.vmIds = [guest.uuid];
    lab.consoleLogs = [guest.console];
    await lab.start();
    agentId = await lab.agentId();
    fullId = (await lab.waitForJob(await lab.backup('full', guest.uuid), 180_000)).restorePointId;
    // the incremental holds a full round of the guest's 50 tick files (the new-domain test reads the last one)
    const name = guest.name;
    await lab.until(() => guestHasFile(name, '/mnt/tick.49.txt'), 180_000, 'the guest to write its 50th tick file');
    const inc = await lab.waitForJob(await lab.backup('incremental', guest.uuid), 180_000);
    expect(inc).toMatchObject({ status: 'completed', type: 'incremental' });
    incId = inc.restorePointId;
  }, 600_000);

  afterAll(() => host.close(lab, { guest }), 120_000);

  const restore = (body: Record<string, unknown>) => lab.api('POST', '/api/v1/restores', { agentId, mode: 'full', ...body });
  const waitForRestore = (restoreId: string, timeoutMs?: number) => lab.waitForRestore(restoreId, timeoutMs);
  const pointFile = async (pointId: string, diskId: string) => join(lab.repoRoot, (await lab.api('GET', `/api/v1/restore-points/${pointId}`)).body.disks.find((d: { diskId: string }) => d.diskId === diskId).file);
  async function sameContent(a: string, b: string): Promise<boolean> {
    return run('qemu-img', ['compare', '-U', a, b]).then(() => true, () => false);
  }
  /** What a failed restore must not leave: no domain by that name, no file in the storage dir, no export, no qemu-nbd, no journal. */
  async function leftovers(name: string, dir = host.storage) {
    const domain = await virsh('domuuid', name).then(() => true, () => false);
    const files = existsSync(dir) ? readdirSync(dir).filter((f) => f.startsWith(name)) : [];
    const leases = (await lab.api('GET', '/api/v1/nbd/ports')).body.length;
    const qemuNbd = processesMentioning(lab.dir).concat(processesMentioning(dir)).filter((p) => p.cmdline.includes('qemu-nbd')).map((p) => p.cmdline);
    const journals = readdirSync(join(lab.dir, 'agent', 'restores')).filter((f) => f.startsWith('restore-'));
    return { domain, files, leases, qemuNbd, journals };
  }
  const clean = { domain: false, files: [], leases: 0, qemuNbd: [], journals: [] };

  it('refuses what cannot be restored with a clear 4xx, recording nothing', async () => {
    const before = (await lab.api('GET', '/api/v1/restores')).body.length;
    const bad: [Record<string, unknown>, number, RegExp][] = [
      [{ restorePointId: incId, target: { kind: 'new-domain', name: '../etc' } }, 400, /target.name/],
      [{ restorePointId: incId, target: { kind: 'new-domain', name: 'x', storageDir: '/tmp/../etc' } }, 400, /storageDir/],
      [{ restorePointId: incId, target: { kind: 'replace' } }, 400, /target.vmId/],
      [{ restorePointId: incId, mode: 'copy', target: { kind: 'new-domain', name: 'x' } }, 400, /mode must be full or instant/],
      [{ restorePointId: incId, mode: 'instant', target: { kind: 'replace', vmId: guest!.uuid } }, 400, /replace needs mode full/],
      [{ restorePointId: incId, target: { kind: 'new-domain', name: 'x' }, extra: 1 }, 400, /extra/],
      [{ restorePointId: 'rp-missing', target: { kind: 'new-domain', name: 'x' } }, 404, /does not exist/],
      [{ restorePointId: incId, agentId: '1b2c3d4e-1111-4222-8333-444455556666', target: { kind: 'new-domain', name: 'x' } }, 404, /not registered/],
      // the running original: its disks are not replaced under it
      [{ restorePointId: incId, target: { kind: 'replace', vmId: guest!.uuid } }, 409, /is running: shut it off/],
      // a name libvirt already has
      [{ restorePointId: incId, target: { kind: 'new-domain', name: guest!.name } }, 409, /already exists/],
      [{ restorePointId: incId, target: { kind: 'new-domain', name: 'x' }, definition: { memoryMiB: 256, vcpus: 1 } }, 409, /holds the VM's configuration/],
    ];
    for (const [body, status, message] of bad) {
      const res = await restore(body);
      expect({ body, status: res.status }).toEqual({ body, status });
      expect(JSON.stringify(res.body.message)).toMatch(message);
    }
    expect((await lab.api('GET', '/api/v1/restores')).body).toHaveLength(before);
  });

  it('replace: into the shut-off original, whose disks then hold the point; its checkpoints go and its next backup is a full with ChainBroken naming the restore', async () => {
    await virsh('destroy', guest!.name);
    // the original's disk changed since the point (what a ransomware or a bad upgrade leaves)
    await run('qemu-io', ['-f', 'qcow2', '-c', 'write -P 0x66 0 8M', guest!.disks[1]]);
    const res = await restore({ restorePointId: incId, target: { kind: 'replace', vmId: guest!.uuid } });
    expect(res.status).toBe(202);
    const done = await waitForRestore(res.body.restoreId);
    expect(done).toMatchObject({ status: 'completed', phase: 'completed', error: null, domain: { name: guest!.name, uuid: guest!.uuid, started: false } });
    for (const [i, diskId] of ['vda', 'vdb'].entries()) expect(await sameContent(guest!.disks[i], await pointFile(incId, diskId))).toBe(true);
    expect(done.disks.map((d: any) => [d.diskId, d.path, d.done, d.verifiedBlocks > 0])).toEqual([
      ['vda', guest!.disks[0], true, true],
      ['vdb', guest!.disks[1], true, true],
    ]);
    expect((await virsh('checkpoint-list', guest!.uuid, '--name')).trim()).toBe('');
    expect(readdirSync(join(host.dir, 'g')).filter((f) => f.includes('sendense-restore'))).toEqual([]);

    const chain = `/api/v1/audit/streams/chain-${guest!.uuid}-${lab.repositoryId}?limit=1000`;
    const broken = (await lab.api('GET', chain)).body.events.filter((e: { type: string }) => e.type === 'ChainBroken');
    expect(broken.map((e: any) => e.data)).toEqual([{ restorePointId: incId, reason: `restore ${res.body.restoreId} replaced the disks of domain ${guest!.name} with restore point ${incId}` }]);
    const next = await lab.waitForJob(await lab.backup('auto', guest!.uuid), 180_000);
    expect(next).toMatchObject({ status: 'completed', type: 'full' });

    // the whole story is one correlation: request, start, disks, end
    const story = (await lab.story(done.correlationId)).map((e) => e.type);
    expect(story).toEqual(expect.arrayContaining(['RestoreRequested', 'RestoreStarted', 'RestoreDisksPlanned', 'RestoreDiskCompleted', 'ChainBroken', 'RestoreCompleted']));
    expect(story.indexOf('RestoreCompleted')).toBe(story.length - 1);
  }, 600_000);

  it('new-domain: the original gone, the incremental point is restored as a new domain from its recorded XML; its disks equal the point before boot, and it boots with its guest agent answering and its files there', async () => {
    await guest!.destroy();
    lab.vmIds = [];
    const name = `sendense-restored-${process.pid}`;
    host.domains.push(name);
    const res = await restore({ restorePointId: incId, target: { kind: 'new-domain', name, storageDir: host.storage } });
    expect(res.status).toBe(202);
    const done = await waitForRestore(res.body.restoreId);
    expect(done).toMatchObject({ status: 'completed', error: null, domain: { name, started: false } });
    const files = ['vda', 'vdb'].map((d) => join(host.storage, `${name}-${d}.qcow2`));
    expect(done.disks.map((d: any) => d.path)).toEqual(files);
    // before boot: exactly the point's content, thin, self-contained
    for (const [i, diskId] of ['vda', 'vdb'].entries()) {
      expect(await sameContent(files[i], await pointFile(incId, diskId))).toBe(true);
      const info = JSON.parse((await run('qemu-img', ['info', '--output=json', files[i]])).stdout);
      expect(info['backing-filename']).toBeUndefined();
      expect(info['actual-size']).toBeLessThan(info['virtual-size']);
    }
    // a new identity: new uuid, new MACs (none recorded here), the new files, its own console log
    const xml = await virsh('dumpxml', name);
    expect(xml).not.toContain(guest!.uuid);
    expect(xml).toContain(`<uuid>${done.domain.uuid}</uuid>`);
    expect(xml).toContain(files[0]);
    expect(xml).not.toContain(join(host.dir, 'g'));
    // what the point held of a file the booted guest will not rewrite for a while
    const raw = join(lab.dir, 'restored-vda.raw');
    await run('qemu-img', ['convert', '-O', 'raw', files[0], raw]);
    const tick = (await run('debugfs', ['-R', 'cat /tick.49.txt', raw])).stdout;
    expect(tick).toMatch(/^write \d+\n$/);

    await virsh('start', name);
    const consoleLog = join(host.storage, `${name}.console.log`);
    await lab.until(async () => existsSync(consoleLog) && readFileSync(consoleLog, 'utf8').includes('GUEST READY'), 120_000, 'the restored guest to boot');
    await lab.until(() => virsh('qemu-agent-command', name, '{"execute":"guest-ping"}').then(() => true), 60_000, "the restored guest's agent to answer");
    const handle = JSON.parse(await virsh('qemu-agent-command', name, '{"execute":"guest-file-open","arguments":{"path":"/mnt/tick.49.txt"}}')).return;
    const read = JSON.parse(await virsh('qemu-agent-command', name, `{"execute":"guest-file-read","arguments":{"handle":${handle}}}`)).return;
    await virsh('qemu-agent-command', name, `{"execute":"guest-file-close","arguments":{"handle":${handle}}}`);
    expect(Buffer.from(read['buf-b64'], 'base64').toString()).toBe(tick);
    expect(readFileSync(consoleLog, 'utf8')).not.toMatch(/GUEST: /);
    await virsh('destroy', name);
  }, 600_000);

  /** `length` bytes at `offset` of a block device, read by the guest itself through its agent. */
  async function guestRead(domain: string, device: string, offset: number, length: number): Promise<Buffer> {
    const handle = JSON.parse(await virsh('qemu-agent-command', domain, `{"execute":"guest-file-open","arguments":{"path":"${device}","mode":"r"}}`)).return;
    try {
      await virsh('qemu-agent-command', domain, `{"execute":"guest-file-seek","arguments":{"handle":${handle},"offset":${offset},"whence":"set"}}`);
      const read = JSON.parse(await virsh('qemu-agent-command', domain, `{"execute":"guest-file-read","arguments":{"handle":${handle},"count":${length}}}`)).return;
      return Buffer.from(read['buf-b64'], 'base64');
    } finally {
      await virsh('qemu-agent-command', domain, `{"execute":"guest-file-close","arguments":{"handle":${handle}}}`);
    }
  }

  it("instant: the new domain runs within seconds on the hub's export while the copy runs; the agent (with its tunnel) and the hub SIGKILLed mid-copy and restarted, the guest keeps its writes, the copy resumes and completes, and the domain then runs without the hub", async () => {
    const name = `sendense-instant-${process.pid}`;
    host.domains.push(name);
    const requested = Date.now();
    const res = await restore({ restorePointId: incId, mode: 'instant', target: { kind: 'new-domain', name, storageDir: host.storage } });
    expect(res.status).toBe(202);
    await lab.until(async () => (await virsh('domstate', name)).trim() === 'running', 60_000, 'the instant domain to run');
    const runningAfterMs = Date.now() - requested;
    await lab.until(async () => (await lab.api('GET', `/api/v1/restores/${res.body.restoreId}`)).body.phase === 'pulling', 60_000, 'the background copy to start');
    // the agent (and with it the tunnel) and the hub killed as soon as the copy runs: the guest boots on, reading the
    // point through the exports and proxies that outlive both
    lab.agent!.child.kill('SIGKILL');
    await lab.agent!.exited;
    lab.hub!.child.kill('SIGKILL');
    await lab.hub!.exited;
    await lab.until(() => virsh('qemu-agent-command', name, '{"execute":"guest-ping"}').then(() => true), 180_000, "the instant guest's agent to answer while the hub and the agent are down");
    expect((await virsh('domstate', name)).trim()).toBe('running');
    // the copy was still running then: the domain still read from the hub's export
    expect(await virsh('dumpxml', name)).toContain("type='network'");
    // the hub back first: it waits for the agent's last word, which the restarted agent gives once its copy ends
    await lab.startHub();
    expect((await lab.api('GET', `/api/v1/restores/${res.body.restoreId}`)).body).toMatchObject({ status: 'running', phase: 'pulling' });
    await lab.startAgent();
    expect(lab.agent!.output()).toContain(`resumed the background copy of instant recovery ${res.body.restoreId}`);
    const done = await waitForRestore(res.body.restoreId, 900_000);
    expect(done).toMatchObject({ status: 'completed', error: null, domain: { name, started: true } });
    const types = (await lab.api('GET', `/api/v1/audit/streams/vm-restore-${res.body.restoreId}`)).body.events.map((e: any) => e);
    const running = types.find((e: any) => e.type === 'InstantRecoveryRunning');
    expect(running.data.runningMs).toBeGreaterThan(0);
    expect(running.data.runningMs).toBeLessThanOrEqual(runningAfterMs + 1000);
    expect(types.map((e: any) => e.type).slice(-2)).toEqual(['InstantRecoveryLocal', 'RestoreCompleted']);
    // nothing of the hub is read any more: no network backing, no proxy, no export
    expect(await virsh('dumpxml', name)).not.toContain("type='network'");
    expect(processesMentioning(join(lab.dir, 'agent')).filter((p) => p.cmdline.includes('nbdkit'))).toEqual([]);
    expect((await lab.api('GET', '/api/v1/nbd/ports')).body).toEqual([]);
    // the agent's journal goes once the hub took the last word
    await lab.until(async () => readdirSync(join(lab.dir, 'agent', 'restores')).every((f) => !f.startsWith('restore-')), 10_000, "the instant recovery's journal to go");
    await lab.stop(lab.hub);
    expect((await virsh('domstate', name)).trim()).toBe('running');
    // every block of the point (the 0x5a fill above the guest's slots) and the guest's own writes (slot 1), read by the guest with the hub gone
    expect((await guestRead(name, '/dev/vdb', 100 * MiB, 65536)).equals(Buffer.alloc(65536, 0x5a))).toBe(true);
    expect((await guestRead(name, '/dev/vdb', 65536, 13)).toString()).toMatch(/^SEQ \d{8}\n$/);
    for (const diskId of ['vda', 'vdb']) {
      const info = JSON.parse((await run('qemu-img', ['info', '-U', '--output=json', join(host.storage, `${name}-${diskId}.qcow2`)])).stdout);
      expect(info['backing-filename']).toBeUndefined();
    }
    await lab.startHub();
    await lab.until(async () => ((await lab.api('GET', '/api/v1/agents')).body as { connected: boolean }[]).some((a) => a.connected), 60_000, 'the agent to reconnect');
    await virsh('destroy', name);
  }, 900_000);

  /** A shut-off domain with one empty 16 MiB disk, reported by the agent: its uuid. */
  async function blankDomain(tag: string): Promise<string> {
    const dir = join(host.dir, tag);
    mkdirSync(dir);
    await run('qemu-img', ['create', '-q', '-f', 'qcow2', join(dir, 'b.qcow2'), '16M']);
    const name = `sendense-${tag}-${process.pid}`;
    host.domains.push(name);
    await run('sh', ['-c', `cat > ${dir}/d.xml <<'X'
<domain type='qemu'><name>${name}</name><memory unit='MiB'>128</memory><vcpu>1</vcpu><os><type arch='x86_64' machine='pc'>hvm</type><boot dev='hd'/></os>
<devices><disk type='file' device='disk'><driver name='qemu' type='qcow2'/><source file='${dir}/b.qcow2'/><target dev='vda' bus='virtio'/></disk>
<channel type='unix'><target type='virtio' name='org.qemu.guest_agent.0'/></channel><memballoon model='none'/></devices></domain>
X`]);
    await virsh('define', join(dir, 'd.xml'));
    const uuid = (await virsh('domuuid', name)).trim();
    await lab.until(async () => ((await lab.api('GET', '/api/v1/vms')).body as { vmId: string }[]).some((v) => v.vmId === uuid), 60_000, `the agent to report domain ${name}`);
    return uuid;
  }

  it('a recovery drill boots the point from the hub without copying it, passes when its guest agent answers, records the boot time in the protection report, and leaves nothing; a point with no bootable system fails with the reason', async () => {
    const res = await lab.api('POST', `/api/v1/restore-points/${incId}/drill`, { agentId, timeoutSeconds: 240 });
    expect(res.status).toBe(202);
    const done = await waitForRestore(res.body.restoreId);
    expect(done).toMatchObject({ status: 'completed', mode: 'instant', target: { kind: 'drill', timeoutSeconds: 240 }, drill: { passed: true, reason: null, consistency: 'application' } });
    expect(done.drill.bootMs).toBeGreaterThan(0);
    const events = (await lab.api('GET', `/api/v1/audit/streams/vm-restore-${res.body.restoreId}`)).body.events;
    expect(events.at(-1)).toMatchObject({ type: 'RecoveryDrillPassed', data: { restorePointId: incId, vmId: guest!.uuid, bootMs: done.drill.bootMs, consistency: 'application' } });
    // the console as it was at the verdict: the guest had booted (its serial console, as it has no display)
    const shot = await fetch(`http://127.0.0.1:${lab.apiPort}/api/v1/restores/${res.body.restoreId}/screenshot`, { headers: { Authorization: `Bearer ${LAB_TOKEN}` } });
    expect(shot.headers.get('content-type')).toBe('text/plain');
    expect(await shot.text()).toContain('GUEST READY');
    // nothing stays: no domain, no proxy, no overlay, no export
    expect((await virsh('list', '--all', '--name')).split('\n').filter((n) => n.startsWith('sendense-drill-'))).toEqual([]);
    expect(processesMentioning(join(lab.dir, 'agent')).filter((p) => p.cmdline.includes('nbdkit'))).toEqual([]);
    expect(readdirSync(join(lab.dir, 'agent', 'libvirt')).filter((f) => f.startsWith('drill-'))).toEqual([]);
    expect((await lab.api('GET', '/api/v1/nbd/ports')).body).toEqual([]);
    const report = await lab.protectionOf(guest!.uuid, (r) => r?.drill?.bootMs === done.drill.bootMs);
    expect(report.drill).toMatchObject({ lastPassed: true, bootMs: done.drill.bootMs, restorePointId: incId });

    // a domain whose only disk holds nothing bootable, backed up shut off: its drill fails, saying why
    blankUuid = await blankDomain('blank');
    const blankPoint = (await lab.waitForJob(await lab.backup('full', blankUuid), 120_000)).restorePointId;
    // through the CLI this time: it waits for the verdict and says why
    const cli = spawnSendense(['restore', 'drill', blankPoint, '--agent', agentId, '--timeout', '20'], { SENDENSE_HUB: `http://127.0.0.1:${lab.apiPort}`, SENDENSE_TOKEN: LAB_TOKEN });
    expect((await cli.exited).code).toBe(1);
    expect(cli.output()).toContain('failed: its guest agent did not answer within 20 s');
    const failing = { body: { restoreId: /drill (\S+) of/.exec(cli.output())![1] } };
    const failed = await waitForRestore(failing.body.restoreId);
    expect(failed).toMatchObject({ status: 'failed', error: 'its guest agent did not answer within 20 s', drill: { passed: false, bootMs: null, reason: 'its guest agent did not answer within 20 s' } });
    expect((await lab.api('GET', `/api/v1/audit/streams/vm-restore-${failing.body.restoreId}`)).body.events.at(-1).type).toBe('RecoveryDrillFailed');
    const blankReport = await lab.protectionOf(blankUuid, (r) => r?.drill?.lastReason === failed.error);
    expect(blankReport.drill).toMatchObject({ lastPassed: false, lastPassedAt: null, lastReason: 'its guest agent did not answer within 20 s' });
    expect((await virsh('list', '--all', '--name')).split('\n').filter((n) => n.startsWith('sendense-drill-'))).toEqual([]);
    expect(processesMentioning(join(lab.dir, 'agent')).filter((p) => p.cmdline.includes('nbdkit'))).toEqual([]);
  }, 600_000);

  it("a policy with a drill calendar drills the newest point of its VM on the VM's own host, a story of its own caused by its slot, and the protection report shows the verdict", async () => {
    // the domain with nothing bootable (the original guest is gone by now): its scheduled drill fails, saying why
    const policy = { name: `drills-${process.pid}`, vms: { ids: [blankUuid] }, repositoryId: lab.repositoryId, schedule: { cron: '0 3 1 1 *', timezone: 'UTC' }, retention: { keepLast: 100 }, rpoHours: 26, drill: { cron: '*/15 * * * * *', timeoutSeconds: 15 } };
    const created = await lab.api('POST', '/api/v1/policies', policy);
    expect(created.status).toBe(201);
    const { policyId } = created.body;
    const slots = async () => (await lab.api('GET', `/api/v1/audit/streams/drill-slots-policy-${policyId}-agent-${agentId}`)).body.events as { eventId: string; type: string; data: any; metadata: any }[];
    let fired: Awaited<ReturnType<typeof slots>>[number] | undefined;
    await lab.until(async () => (fired = (await slots())?.find((e) => e.type === 'DrillSlotFired')) !== undefined, 60_000, 'a drill slot to fire');
    const done = await waitForRestore(fired!.data.restoreId);
    expect((await lab.api('DELETE', `/api/v1/policies/${policyId}`)).status).toBe(200);
    const newest = ((await lab.api('GET', `/api/v1/vms/${blankUuid}/restore-points`)).body as { restorePointId: string; repositoryId: string }[]).filter((p) => p.repositoryId === lab.repositoryId).at(-1)!;
    expect(fired!.data).toMatchObject({ policyId, agentId, vmId: blankUuid, restorePointId: newest.restorePointId });
    const reason = 'its guest agent did not answer within 15 s';
    expect(done).toMatchObject({ status: 'failed', restorePointId: newest.restorePointId, target: { kind: 'drill', timeoutSeconds: 15 }, drill: { passed: false, reason } });
    const story = (await lab.api('GET', `/api/v1/audit/streams/vm-restore-${fired!.data.restoreId}`)).body.events;
    expect(story[0]).toMatchObject({ type: 'RestoreRequested', metadata: { causationId: fired!.eventId } });
    expect(story[0].metadata.correlationId).not.toBe(fired!.metadata.correlationId);
    expect(story.at(-1)).toMatchObject({ type: 'RecoveryDrillFailed', metadata: { correlationId: story[0].metadata.correlationId } });
    const report = await lab.protectionOf(blankUuid, (r) => r?.drill?.lastReason === reason);
    expect(report.drill).toMatchObject({ lastPassed: false, lastPassedAt: null, lastReason: reason });
    // a later slot may have fired before the delete: the drill it started ends too, and nothing stays
    await lab.until(async () => ((await lab.api('GET', `/api/v1/restores?vmId=${blankUuid}`)).body as { status: string }[]).every((r) => r.status !== 'running'), 300_000, 'every drill to end');
    expect((await virsh('list', '--all', '--name')).split('\n').filter((n) => n.startsWith('sendense-drill-'))).toEqual([]);
    expect((await lab.api('GET', '/api/v1/nbd/ports')).body).toEqual([]);
  }, 600_000);

  it('a corrupt point is refused; forced, the restore fails naming the damaged block and leaves no domain and no file', async () => {
    // one flipped byte in the 0x5a fill of vdb, which the guest never rewrites: the full holds it, the incremental reads it through
    const file = await pointFile(fullId, 'vdb');
    const map = JSON.parse((await run('qemu-img', ['map', '--output=json', '-U', file])).stdout) as { start: number; length: number; data: boolean; zero: boolean; offset?: number }[];
    const extent = map.find((e) => e.data && !e.zero && e.offset !== undefined && e.start + e.length > 40 * MiB)!;
    const guestOffset = Math.max(extent.start, 40 * MiB) + 100;
    const handle = await open(file, 'r+');
    const byte = Buffer.alloc(1);
    await handle.read(byte, 0, 1, extent.offset! + guestOffset - extent.start);
    byte[0] ^= 0xff;
    await handle.write(byte, 0, 1, extent.offset! + guestOffset - extent.start);
    await handle.close();
    expect((await lab.api('POST', `/api/v1/restore-points/${fullId}/verify`)).body.integrity).toBe('corrupt');
    const block = guestOffset - (guestOffset % 65536);

    const name = `sendense-corrupt-${process.pid}`;
    const refused = await restore({ restorePointId: incId, target: { kind: 'new-domain', name, storageDir: host.storage } });
    expect(refused.status).toBe(409);
    expect(refused.body.message).toContain(`vdb at ${block} (in ${fullId})`);

    const forced = await restore({ restorePointId: incId, target: { kind: 'new-domain', name, storageDir: host.storage }, force: true });
    expect(forced.status).toBe(202);
    const done = await waitForRestore(forced.body.restoreId);
    expect(done.status).toBe('failed');
    expect(done.error).toContain(`disk vdb at offset ${block}`);
    expect(done.damaged).toEqual([{ diskId: 'vdb', offset: block, length: 65536, expected: expect.stringMatching(/^[0-9a-f]{64}$/), actual: expect.stringMatching(/^[0-9a-f]{64}$/) }]);
    expect(done.knownDamage).toEqual([{ diskId: 'vdb', offset: block, length: 65536, inPointId: fullId }]);
    expect(await leftovers(name)).toEqual(clean);
  }, 600_000);

  it('the agent SIGKILLed mid-restore: the restore fails with the reason, and the next agent start removes what it wrote; a full disk fails it with the reason, leaving nothing', async () => {
    // a clean chain to restore from: a new full of the restored domain is not needed, the full point is corrupt,
    // so restore the newest point (the full taken after the replace), which reads nothing of the damaged one
    const points = (await lab.api('GET', `/api/v1/vms/${guest!.uuid}/restore-points`)).body as { restorePointId: string; integrity: string }[];
    const good = points.at(-1)!;
    expect(good.integrity).not.toBe('corrupt');
    const name = `sendense-killed-${process.pid}`;
    const res = await restore({ restorePointId: good.restorePointId, target: { kind: 'new-domain', name, storageDir: host.storage } });
    expect(res.status).toBe(202);
    await lab.until(async () => existsSync(join(host.storage, `${name}-vda.qcow2`)), 60_000, 'the restore to write its first disk');
    lab.agent!.child.kill('SIGKILL');
    await lab.agent!.exited;
    const done = await waitForRestore(res.body.restoreId, 120_000);
    expect(done.status).toBe('failed');
    expect(done.error).toMatch(/agent disconnected/);
    await lab.startAgent();
    expect(await leftovers(name)).toEqual(clean);

    // a storage dir too small for the point (as the hub measured it) is refused before anything is recorded
    const small = join(host.dir, 'small');
    mkdirSync(small);
    await run('mount', ['-t', 'tmpfs', '-o', 'size=24m', 'tmpfs', small]);
    try {
      const before = (await lab.api('GET', '/api/v1/restores')).body.length;
      const refused = await restore({ restorePointId: good.restorePointId, target: { kind: 'new-domain', name, storageDir: small } });
      expect({ status: refused.status, message: refused.body.message }).toEqual({ status: 422, message: expect.stringMatching(new RegExp(`^not enough space in ${small}: disk\\(s\\) vda, vdb of the point need .* \\(qemu-img measure on the hub\\), 24\\.0 MiB are free$`)) });
      expect((await lab.api('GET', '/api/v1/restores')).body).toHaveLength(before);
    } finally {
      await run('umount', [small]);
    }
    // one that fitted when asked and filled up under it (others write there too), on a loop-mounted ext4: the write
    // fails, the restore says so, nothing stays
    const image = join(host.dir, 'filling.ext4');
    await run('truncate', ['-s', '2G', image]);
    await run('mkfs.ext4', ['-q', image]);
    await run('mount', ['-o', 'loop', image, small]);
    try {
      const full = await restore({ restorePointId: good.restorePointId, target: { kind: 'new-domain', name, storageDir: small } });
      expect(full.status).toBe(202);
      const avail = Number((await run('df', ['-B1', '--output=avail', small])).stdout.split('\n')[1]);
      await run('fallocate', ['-l', String(avail - 4 * MiB), join(small, 'other-tenant.img')]);
      const failed = await waitForRestore(full.body.restoreId);
      expect(failed.status).toBe('failed');
      expect(failed.error).toMatch(/No space left on device|ENOSPC|out of space|write failed/i);
      expect(await leftovers(name, small)).toEqual(clean);
    } finally {
      await run('umount', [small]);
    }
  }, 600_000);

  it('a point deleted while its restore starts: either the delete is refused (the restore reads it) or the restore fails saying the point is gone, leaving nothing', async () => {
    // a point of its own, of a domain of its own, deleted the moment its restore is accepted
    const pointId = (await lab.waitForJob(await lab.backup('full', await blankDomain('deleted-source')), 120_000)).restorePointId;
    const name = `sendense-deleted-${process.pid}`;
    host.domains.push(name);
    const res = await restore({ restorePointId: pointId, target: { kind: 'new-domain', name, storageDir: host.storage } });
    expect(res.status).toBe(202);
    const deleted = await lab.api('DELETE', `/api/v1/restore-points/${pointId}`);
    const done = await waitForRestore(res.body.restoreId);
    if (deleted.status === 409) {
      expect(done).toMatchObject({ status: 'completed' });
    } else {
      expect(deleted.status).toBe(200);
      expect(done).toMatchObject({ status: 'failed', error: expect.stringMatching(new RegExp(`restore point ${pointId} was deleted while the restore was starting|could not open|No such file`)) });
      expect(await leftovers(name)).toEqual(clean);
    }
    process.stdout.write(`point deleted while its restore started: delete ${deleted.status}, restore ${done.status}${done.error ? ` (${done.error})` : ''}\n`);
  }, 600_000);

  it('a restore cancelled mid-copy reads cancelled only once the agent removed what it wrote', async () => {
    const points = (await lab.api('GET', `/api/v1/vms/${guest!.uuid}/restore-points`)).body as { restorePointId: string }[];
    const name = `sendense-cancelled-${process.pid}`;
    const res = await restore({ restorePointId: points.at(-1)!.restorePointId, target: { kind: 'new-domain', name, storageDir: host.storage } });
    expect(res.status).toBe(202);
    await lab.until(async () => existsSync(join(host.storage, `${name}-vda.qcow2`)), 60_000, 'the restore to write its first disk');
    expect((await lab.api('POST', `/api/v1/restores/${res.body.restoreId}/cancel`)).status).toBe(202);
    const done = await waitForRestore(res.body.restoreId, 120_000);
    expect(done).toMatchObject({ status: 'cancelled', error: 'cancelled' });
    expect(await leftovers(name)).toEqual(clean);
    expect((await lab.api('POST', `/api/v1/restores/${res.body.restoreId}/cancel`)).status).toBe(409);
    const types = (await lab.api('GET', `/api/v1/audit/streams/vm-restore-${res.body.restoreId}`)).body.events.map((e: { type: string }) => e.type);
    expect(types.at(-1)).toBe('RestoreCancelled');
    expect(types).toContain('RestoreCancelRequested');
  }, 600_000);

  it('the CLI restores a VM with progress, and a point cannot be deleted while a restore reads it', async () => {
    const points = (await lab.api('GET', `/api/v1/vms/${guest!.uuid}/restore-points`)).body as { restorePointId: string }[];
    const pointId = points.at(-1)!.restorePointId;
    const name = `sendense-cli-${process.pid}`;
    host.domains.push(name);
    const cli = spawnSendense(['restore', 'vm', pointId, '--agent', agentId, '--as', name, '--storage-dir', host.storage], { SENDENSE_HUB: `http://127.0.0.1:${lab.apiPort}`, SENDENSE_TOKEN: LAB_TOKEN });
    await lab.until(async () => ((await lab.api('GET', '/api/v1/restores')).body as { status: string }[]).some((r) => r.status === 'running'), 60_000, 'the CLI restore to run');
    const refused = await lab.api('DELETE', `/api/v1/restore-points/${pointId}`);
    expect(refused.status).toBe(409);
    const { code } = await cli.exited;
    expect({ code, output: cli.output() }).toEqual({ code: 0, output: expect.stringMatching(new RegExp(`completed: domain ${name} \\(.*\\), .* restored in`)) });
    expect(cli.output()).toMatch(/vda\s+\[#+\]\s+100%/);
    expect((await virsh('domstate', name)).trim()).toBe('shut off');
  }, 600_000);
});
