import { execFile } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { readFileSync, renameSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { promisify } from 'node:util';
import { VsphereClient, type VsphereVm } from '../../src/agent/sources/vsphere/vsphere-client';
import { BackupLab, LAB_TOKEN } from '../support/backup-lab';
import { spawnSendense } from '../support/processes';
import { flatVmdkDescriptor, startVcsim, type Vcsim } from '../support/vcsim-lab';

const run = promisify(execFile);
const MiB = 1024 * 1024;
const BLOCK = 64 * 1024;
/** Small pages, so that an incremental of the 12 MiB disk takes three answers of QueryChangedDiskAreas. */
const CBT_PAGE = 4 * MiB;

/** The lab with its agent on vcsim's vCenter instead of an inventory file. */
class VsphereLab extends BackupLab {
  constructor(private readonly vcsim: Vcsim) {
    super();
  }

  async startWithVsphere(): Promise<void> {
    await this.prepare();
    await this.startHub();
    this.repositoryId = (await this.api('POST', '/api/v1/repositories', { name: 'lab', kind: 'local', path: this.repoRoot })).body.repositoryId;
    const registered = spawnSendense(['agent', 'register', '--hub', `http://127.0.0.1:${this.apiPort}`, '--name', 'vmware-agent'], this.agentEnv());
    if ((await registered.exited).code !== 0) throw new Error(`agent register failed: ${registered.output()}`);
    writeFileSync(join(this.dir, 'vsphere.password'), `${this.vcsim.password}\n`, { mode: 0o600 });
    await this.startAgent();
  }

  agentArgs(thumbprint = this.vcsim.sha256): string[] {
    return ['agent', 'run', '--vsphere', this.vcsim.url, '--vsphere-user', this.vcsim.user, '--vsphere-password-file', join(this.dir, 'vsphere.password'), '--vsphere-thumbprint', thumbprint];
  }

  override async startAgent(env: NodeJS.ProcessEnv = {}): Promise<void> {
    this.agent = spawnSendense(this.agentArgs(), { ...this.agentEnv(), ...env });
    await this.until(async () => {
      const vms = (await this.api('GET', '/api/v1/vms')).body as { agentConnected: boolean }[];
      return vms.length > 0 && vms.every((v) => v.agentConnected);
    }, 30_000, 'the agent to connect and report vCenter\'s VMs');
  }
}

describe('VMware vSphere source (hub + agent against vcsim, CBT simulated)', () => {
  let vcsim: Vcsim;
  let lab: VsphereLab;
  let client: VsphereClient;
  let vm: VsphereVm;
  const datastoreDir = () => vcsim.datastores[0].path;
  /** The VM's disks as the test wrote them: diskId -> flat file on the datastore. */
  const flats = new Map<string, string>();

  beforeAll(async () => {
    vcsim = await startVcsim({ cbtPageBytes: CBT_PAGE });
    client = await VsphereClient.connect({ sdkUrl: vcsim.url, user: vcsim.user, password: vcsim.password, thumbprint: vcsim.sha256 });
    vm = (await client.listVms()).find((v) => v.name === 'DC0_H0_VM0')!;
    // Two disks of known content, beside the one vcsim's model gave it (which gets content too: a disk
    // without a descriptor would fail the backup).
    const dir = vm.disks[0].fileName.replace(/^\[[^\]]+\] /, '').split('/')[0];
    await client.addDisk(vm.ref, { capacityBytes: 8 * MiB, fileName: `[LocalDS_0] ${dir}/data1.vmdk` });
    await client.addDisk(vm.ref, { capacityBytes: 12 * MiB, fileName: `[LocalDS_0] ${dir}/data2.vmdk` });
    vm = (await client.findVm(vm.instanceUuid))!;
    for (const d of vm.disks) {
      const path = d.fileName.replace(/^\[[^\]]+\] /, '');
      const flat = path.replace(/\.vmdk$/, '-flat.vmdk');
      // random data in the first half, zeroes after: the full reads only what holds data ('*')
      const content = Buffer.concat([randomBytes(d.capacityBytes / 2), Buffer.alloc(d.capacityBytes / 2)]);
      await client.putFile(client.datastoreUrl(vm.datacenter, 'LocalDS_0', path), Buffer.from(flatVmdkDescriptor(flat.split('/').pop()!, d.capacityBytes)));
      await client.putFile(client.datastoreUrl(vm.datacenter, 'LocalDS_0', flat), content);
      flats.set(`disk-${d.key}`, join(datastoreDir(), flat));
    }
    lab = new VsphereLab(vcsim);
    await lab.startWithVsphere();
  }, 240_000);

  afterAll(async () => {
    if (lab?.hub) await lab.close();
    await client?.logout().catch(() => undefined);
    await vcsim?.stop();
  }, 60_000);

  /** The simulated CBT's log of QueryChangedDiskAreas calls (its control endpoint; curl, since the certificate is self-signed). */
  async function cbtCalls(): Promise<{ vm: string; deviceKey: number; startOffset: number; changeId: string; fault?: string }[]> {
    const { stdout } = await run('curl', ['-sk', vcsim.cbt.calls]);
    return JSON.parse(stdout);
  }
  async function resetCalls() {
    await run('curl', ['-sk', '-X', 'POST', vcsim.cbt.reset]);
  }
  async function sameAsFlat(point: { disks: { diskId: string; file: string }[] }) {
    for (const d of point.disks) await run('qemu-img', ['compare', '-q', '-f', 'raw', '-F', 'qcow2', flats.get(d.diskId)!, join(lab.repoRoot, d.file)]);
  }
  async function backup(type: 'full' | 'incremental' | 'auto') {
    const job = await lab.waitForJob(await lab.backup(type, vm.instanceUuid), 120_000);
    const point = job.restorePointId ? (await lab.api('GET', `/api/v1/restore-points/${job.restorePointId}`)).body : null;
    return { job, point, events: await lab.events(job.jobId) };
  }
  const snapshotsOnVm = async () => (await client.findVm(vm.instanceUuid))!.snapshots.map((s) => s.name);
  /** Rewrites whole 64 KiB blocks of a disk's flat file on the datastore, as a guest's writes would. */
  function writeBlocks(diskId: string, blocks: number[]) {
    const file = flats.get(diskId)!;
    const data = readFileSync(file);
    for (const b of blocks) randomBytes(BLOCK).copy(data, b * BLOCK);
    writeFileSync(`${file}.new`, data);
    renameSync(`${file}.new`, file);
  }

  it('reports every VM of vCenter by its instance UUID, with its disks', async () => {
    const vms = (await lab.api('GET', '/api/v1/vms')).body as { vmId: string; name: string; powerState: string; disks: { diskId: string; path: string; virtualSize: number; changeTracking: string; label: string; datastore: string }[] }[];
    const expected = await client.listVms();
    expect(vms.map((v) => v.vmId).sort()).toEqual(expected.map((v) => v.instanceUuid).sort());
    const mine = vms.find((v) => v.vmId === vm.instanceUuid)!;
    expect(mine.name).toBe('DC0_H0_VM0');
    expect(mine.powerState).toBe('on');
    expect(mine.disks.map((d) => [d.diskId, d.label, d.path, d.datastore, d.virtualSize, d.changeTracking])).toEqual(vm.disks.map((d) => [`disk-${d.key}`, d.label, d.fileName, 'LocalDS_0', d.capacityBytes, 'none']));
  });

  it('re-reports the inventory when vCenter says a VM changed', async () => {
    const other = (await client.listVms()).find((v) => v.name === 'DC0_H0_VM1')!;
    const powerOf = async () => ((await lab.api('GET', '/api/v1/vms')).body as { vmId: string; powerState: string }[]).find((v) => v.vmId === other.instanceUuid)?.powerState;
    expect(await powerOf()).toBe('on');
    // vcsim runs tasks before it answers: the VM is off when this returns
    await client.invoke('PowerOffVM_Task', other.ref, '');
    await lab.until(async () => (await powerOf()) === 'off', 15_000, 'the hub to hear that the VM was powered off');
    await client.invoke('PowerOnVM_Task', other.ref, '');
    await lab.until(async () => (await powerOf()) === 'on', 15_000, 'the hub to hear that the VM was powered on');
  });

  it('refuses a vCenter whose certificate is not the pinned one, naming the thumbprints', async () => {
    const agent = spawnSendense(lab.agentArgs('00'.repeat(32)), lab.agentEnv());
    const exited = await agent.exited;
    expect(exited.code).not.toBe(0);
    expect(agent.output()).toContain(vcsim.sha256);
  });

  let full: Awaited<ReturnType<typeof backup>>;
  it('backs up a full from ONE snapshot, removed after, every disk bit-exact, and turns CBT on', async () => {
    await resetCalls();
    full = await backup('auto');
    expect(full.job.status).toBe('completed');
    expect(full.job.type).toBe('full');
    const types = full.events.map((e) => e.type);
    expect(types.filter((t) => t === 'SnapshotCreated')).toHaveLength(1);
    expect(types.filter((t) => t === 'SnapshotRemoved')).toHaveLength(1);
    const created = full.events.find((e) => e.type === 'SnapshotCreated')!.data;
    expect(created.diskIds.sort()).toEqual([...flats.keys()].sort());
    // vcsim's VMs run without VMware Tools: crash-consistent, and the point says why
    expect(created).toMatchObject({ consistency: 'crash', consistencyReason: expect.stringMatching(/VMware Tools are not running/) });
    expect(await snapshotsOnVm()).toEqual([]);
    await sameAsFlat(full.point);
    const now = (await client.findVm(vm.instanceUuid))!;
    expect(now.changeTrackingEnabled).toBe(true);
    // each disk's changeId as of the snapshot is recorded with the point
    for (const d of full.point.disks) expect(d.changeRef).toMatch(/^52 [0-9a-f ]+-[0-9a-f ]+\/\d+$/);
    // the full asked what holds data ('*') and wrote only that: half of each disk
    expect((await cbtCalls()).every((c) => c.changeId === '*')).toBe(true);
    const written = full.events.filter((e) => e.type === 'DiskTransferCompleted').map((e) => [e.data.diskId, e.data.bytesWritten]);
    expect(Object.fromEntries(written)).toEqual(Object.fromEntries(vm.disks.map((d) => [`disk-${d.key}`, d.capacityBytes / 2])));
  });

  let incremental: Awaited<ReturnType<typeof backup>>;
  it('backs up an incremental of exactly the changed blocks, paged, and carries the changeId on', async () => {
    const big = vm.disks.find((d) => d.capacityBytes === 12 * MiB)!;
    const bigId = `disk-${big.key}`;
    // blocks on both sides of the 4 MiB page boundaries, and one in the zero half
    const changed = [0, 63, 64, 65, 128, 150];
    writeBlocks(bigId, changed);
    await resetCalls();
    incremental = await backup('auto');
    expect(incremental.job.status).toBe('completed');
    expect(incremental.job.type).toBe('incremental');
    expect(incremental.point.parentId).toBe(full.point.restorePointId);
    await sameAsFlat(incremental.point);
    const written = Object.fromEntries(incremental.events.filter((e) => e.type === 'DiskTransferCompleted').map((e) => [e.data.diskId, e.data.bytesWritten]));
    expect(written[bigId]).toBe(changed.length * BLOCK);
    for (const d of vm.disks.filter((x) => x.key !== big.key)) expect(written[`disk-${d.key}`]).toBe(0);
    const previous = full.point.disks.find((d: { diskId: string }) => d.diskId === bigId).changeRef;
    const calls = (await cbtCalls()).filter((c) => c.deviceKey === big.key);
    expect(calls.map((c) => [c.startOffset, c.changeId])).toEqual([0, 4 * MiB, 8 * MiB].map((o) => [o, previous]));
    const next = incremental.point.disks.find((d: { diskId: string }) => d.diskId === bigId).changeRef;
    expect(next).not.toBe(previous);
    expect(next.split('/')[0]).toBe(previous.split('/')[0]);
    expect(await snapshotsOnVm()).toEqual([]);
  });

  it('ends the chain when vSphere refuses the changeId: that backup fails and removes its snapshot, the next is a full with ChainBroken', async () => {
    const moref = vm.ref.value;
    await run('curl', ['-sk', '-X', 'POST', `${vcsim.cbt.reset.replace('/reset', '/lose')}?vm=${encodeURIComponent(moref)}`]);
    writeBlocks(flats.keys().next().value!, [1]);
    const refused = await backup('auto');
    expect(refused.job.status).toBe('failed');
    expect(refused.job.error).toMatch(/vSphere refused changeId .* the next backup is a full/);
    expect(await snapshotsOnVm()).toEqual([]);
    const next = await backup('auto');
    expect(next.job.status).toBe('completed');
    expect(next.job.type).toBe('full');
    await sameAsFlat(next.point);
    const chain = (await lab.api('GET', `/api/v1/audit/streams/chain-${vm.instanceUuid}-${lab.repositoryId}?limit=1000`)).body.events as { type: string; data: any }[];
    expect(chain.filter((e) => e.type === 'ChainBroken').at(-1)!.data.reason).toMatch(/vSphere refused changeId/);
  });

  it('ends the chain when CBT was turned off and on: a full with ChainBroken in the same job', async () => {
    await client.setChangeTracking(vm.ref, false);
    await client.setChangeTracking(vm.ref, true);
    const next = await backup('auto');
    expect(next.job.status).toBe('completed');
    expect(next.job.type).toBe('full');
    await sameAsFlat(next.point);
    const chain = (await lab.api('GET', `/api/v1/audit/streams/chain-${vm.instanceUuid}-${lab.repositoryId}?limit=1000`)).body.events as { type: string; data: any }[];
    expect(chain.filter((e) => e.type === 'ChainBroken').at(-1)!.data.reason).toMatch(/turned off and on again/);
    const after = await backup('auto');
    expect(after.job.type).toBe('incremental');
  });

  it('fails a backup whose disk read is refused mid-copy, naming why, and removes the snapshot', async () => {
    await lab.stop(lab.agent);
    // slow enough that the file goes away while the copy reads it
    await lab.startAgent({ SENDENSE_MAX_RATE: '1' });
    const big = vm.disks.find((d) => d.capacityBytes === 12 * MiB)!;
    const flat = flats.get(`disk-${big.key}`)!;
    const jobId = await lab.backup('full', vm.instanceUuid);
    await lab.until(async () => (await lab.events(jobId)).some((e) => e.type === 'DiskTransferStarted'), 60_000, 'the copy to start');
    renameSync(flat, `${flat}.away`);
    try {
      const job = await lab.waitForJob(jobId, 120_000);
      expect(job.status).toBe('failed');
      expect(job.error).toMatch(/404/);
      const types = (await lab.events(jobId)).map((e) => e.type);
      expect(types).toEqual(expect.arrayContaining(['SnapshotCreated', 'SnapshotRemoved']));
      expect(await snapshotsOnVm()).toEqual([]);
      expect((await lab.leftovers([vm.instanceUuid])).qemuNbd).toEqual([]);
    } finally {
      renameSync(`${flat}.away`, flat);
    }
  });

  it('removes the snapshot of a backup cancelled mid-copy, and the next incremental continues from the last point recorded', async () => {
    const before = ((await lab.api('GET', `/api/v1/vms/${vm.instanceUuid}/restore-points?repositoryId=${lab.repositoryId}`)).body as { restorePointId: string }[]).at(-1)!;
    // 6 MiB changed: at 1 MiB/s the second 4 MiB request waits its turn for seconds, and the cancel lands then
    const big = vm.disks.find((d) => d.capacityBytes === 12 * MiB)!;
    writeBlocks(`disk-${big.key}`, Array.from({ length: 96 }, (_, i) => i));
    const jobId = await lab.backup('incremental', vm.instanceUuid);
    await lab.until(async () => (await lab.events(jobId)).some((e) => e.type === 'DiskTransferStarted'), 60_000, 'the copy to start');
    expect((await lab.api('POST', `/api/v1/backups/${jobId}/cancel`)).status).toBe(202);
    const job = await lab.waitForJob(jobId, 60_000);
    expect(job).toMatchObject({ status: 'failed', error: 'cancelled', cancelRequested: true });
    expect((await lab.events(jobId)).map((e) => e.type)).toContain('SnapshotRemoved');
    expect(await snapshotsOnVm()).toEqual([]);
    await lab.stop(lab.agent);
    await lab.startAgent();
    const next = await backup('auto');
    expect(next.job.type).toBe('incremental');
    expect(next.point.parentId).toBe(before.restorePointId);
    await sameAsFlat(next.point);
    await lab.stop(lab.agent);
    await lab.startAgent({ SENDENSE_MAX_RATE: '1' });
  });

  it('removes, at its next start, the snapshot an agent SIGKILLed mid-backup left on the VM', async () => {
    const jobId = await lab.backup('full', vm.instanceUuid);
    await lab.until(async () => (await lab.events(jobId)).some((e) => e.type === 'DiskTransferStarted'), 60_000, 'the copy to start');
    expect((await snapshotsOnVm()).filter((n) => n.startsWith('sendense-'))).toHaveLength(1);
    await lab.stop(lab.agent, 'SIGKILL');
    expect((await snapshotsOnVm()).filter((n) => n.startsWith('sendense-'))).toHaveLength(1);
    await lab.startAgent();
    await lab.until(async () => (await snapshotsOnVm()).length === 0, 30_000, 'the restarted agent to remove the snapshot');
    const job = await lab.waitForJob(jobId, 120_000);
    expect(job.status).toBe('failed');
    const again = await backup('auto');
    expect(again.job.status).toBe('completed');
    await sameAsFlat(again.point);
  });

  it('removes a snapshot of its own an earlier backup could not remove (vCenter busy) before it takes the next one: the backup is not taken on top of it', async () => {
    const agentId = (await lab.api('GET', '/api/v1/agents')).body[0].agentId as string;
    await client.createSnapshot(vm.ref, `sendense-${agentId.slice(0, 8)}-left-by-a-failed-removal`, 'left', { memory: false, quiesce: false });
    expect(await snapshotsOnVm()).toHaveLength(1);
    const next = await backup('auto');
    expect(next.job.status).toBe('completed');
    await sameAsFlat(next.point);
    expect(await snapshotsOnVm()).toEqual([]);
  });

  it('backs up into a chunks repository: a full, an incremental of the changed blocks, and a later full that sends only what differs; each point downloads as the disks were', async () => {
    const registered = await lab.api('POST', '/api/v1/repositories', { name: 'dedup', kind: 'local', path: join(lab.dir, 'dedup'), layout: 'chunks' });
    expect(registered.status).toBe(201);
    const qcow2 = lab.repositoryId;
    lab.repositoryId = registered.body.repositoryId;
    try {
      /** Each disk of the point, downloaded raw through the API, equals the flat file on the datastore now. */
      const downloadsAsFlat = async (point: { restorePointId: string; disks: { diskId: string }[] }) => {
        for (const d of point.disks) {
          const out = join(lab.dir, `${point.restorePointId}-${d.diskId}.raw`);
          const res = await fetch(`http://127.0.0.1:${lab.apiPort}/api/v1/restore-points/${point.restorePointId}/disks/${d.diskId}/image?format=raw`, { headers: { Authorization: `Bearer ${LAB_TOKEN}` } });
          expect(res.status).toBe(200);
          writeFileSync(out, Buffer.from(await res.arrayBuffer()));
          await run('cmp', [out, flats.get(d.diskId)!]);
        }
      };
      const written = (b: Awaited<ReturnType<typeof backup>>) => Object.fromEntries(b.events.filter((e) => e.type === 'DiskTransferCompleted').map((e) => [e.data.diskId, e.data.bytesWritten]));
      const first = await backup('full');
      expect(first.job).toMatchObject({ status: 'completed', type: 'full' });
      for (const d of first.point.disks) expect(d.file).toMatch(/^chunks\/points\//);
      await downloadsAsFlat(first.point);

      const big = `disk-${vm.disks.find((d) => d.capacityBytes === 12 * MiB)!.key}`;
      writeBlocks(big, [3, 70]);
      const next = await backup('auto');
      expect(next.job).toMatchObject({ status: 'completed', type: 'incremental' });
      expect(written(next)[big]).toBe(2 * BLOCK);
      await downloadsAsFlat(next.point);

      // a full after that reads every data area of the disks but sends the one block that changed since
      writeBlocks(big, [5]);
      const again = await backup('full');
      expect(again.job).toMatchObject({ status: 'completed', type: 'full' });
      expect(written(again)).toEqual(Object.fromEntries(vm.disks.map((d) => [`disk-${d.key}`, `disk-${d.key}` === big ? BLOCK : 0])));
      await downloadsAsFlat(again.point);
      const verified = await lab.api('POST', `/api/v1/restore-points/${again.point.restorePointId}/verify`);
      expect(verified.body.content).toMatchObject({ ok: true, digests: 'all' });
      expect(await snapshotsOnVm()).toEqual([]);
    } finally {
      lab.repositoryId = qcow2;
    }
  });
});
