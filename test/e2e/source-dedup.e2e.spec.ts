import { execFile } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { copyFileSync, createWriteStream, mkdirSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { Readable } from 'node:stream';
import { pipeline } from 'node:stream/promises';
import { promisify } from 'node:util';
import { MiB } from '../fixtures/vm/sample-vm';
import { BackupLab, LAB_TOKEN } from '../support/backup-lab';
import { processesMentioning, spawnSendense } from '../support/processes';

const run = promisify(execFile);

/**
 * Source-side deduplication into an encrypted chunks repository, with a real hub and agent: a full starts from the
 * newest point the same agent sent of a disk that size (the VM's own first), the agent hashes each block and sends
 * only those that differ from it, and the point still reads back bit for bit and verifies every block. vm2 is a clone
 * of vm1 (its disks copied before any backup), as a VM made from a template is.
 */
describe('source-side deduplication (real hub + agent, encrypted chunks repository)', () => {
  const keyDir = mkdtempSync(join(tmpdir(), 'sendense-dedup-key-'));
  const keyFile = join(keyDir, 'repository.key');
  writeFileSync(keyFile, `${randomBytes(32).toString('hex')}\n`, { mode: 0o600 });
  const lab = new BackupLab({ DATABASE_URL: '' }, {}, { layout: 'chunks', encryption: { keyFile } });
  const vm2Disks = () => ['disk0', 'disk1'].map((d) => join(lab.dir, 'vm2', `${d}.qcow2`));

  beforeAll(async () => {
    await lab.start([64 * MiB, 96 * MiB], [0, 24 * MiB], true);
    // vm2 made from vm1 as from a template: the same images, before either was backed up
    vm2Disks().forEach((path, n) => copyFileSync(lab.vm.disks[n].path, path));
  }, 180_000);
  afterAll(async () => {
    await lab.close();
    rmSync(keyDir, { recursive: true, force: true });
  }, 60_000);

  type Disk = { diskId: string; written: number; zeroed: number; known: number | undefined; knownFrom: string | undefined };
  /** A completed backup: its point and, per disk, what crossed the wire and what the target started from. */
  async function backup(vmId: string, type: 'full' | 'auto' = 'full'): Promise<{ restorePointId: string; disks: Disk[] }> {
    const jobId = await lab.backup(type, vmId);
    const job = await lab.waitForJob(jobId, 120_000);
    if (job.status !== 'completed') throw new Error(`backup of ${vmId} ${job.status}: ${JSON.stringify(job)}\n${lab.hub?.output().slice(-3000)}`);
    const events = await lab.events(jobId);
    const targets = events.find((e) => e.type === 'BackupTargetsPrepared')!.data.targets as { diskId: string; knownFrom?: string }[];
    const disks = events
      .filter((e) => e.type === 'DiskTransferCompleted')
      .map((e) => ({ diskId: e.data.diskId, written: e.data.bytesWritten, zeroed: e.data.bytesZeroed, known: e.data.bytesKnown, knownFrom: targets.find((t) => t.diskId === e.data.diskId)!.knownFrom }))
      .sort((a, b) => a.diskId.localeCompare(b.diskId));
    return { restorePointId: job.restorePointId, disks };
  }
  async function expectReadsBack(restorePointId: string, paths: string[]): Promise<void> {
    for (const [n, path] of paths.entries()) {
      const out = join(lab.dir, `${restorePointId}-disk${n}.raw`);
      const res = await fetch(`http://127.0.0.1:${lab.apiPort}/api/v1/restore-points/${restorePointId}/disks/disk${n}/image?format=raw`, { headers: { Authorization: `Bearer ${LAB_TOKEN}` } });
      expect(res.status).toBe(200);
      await pipeline(Readable.fromWeb(res.body as any), createWriteStream(out));
      await run('qemu-img', ['compare', '-q', '-f', 'raw', '-F', 'qcow2', out, path]);
      rmSync(out);
    }
    const verified = await lab.api('POST', `/api/v1/restore-points/${restorePointId}/verify`);
    expect({ status: verified.status, ok: verified.body.content?.ok, digests: verified.body.content?.digests }).toEqual({ status: 201, ok: true, digests: 'all' });
  }

  let first = '';
  it("sends a VM's first full whole: there is nothing to start from", async () => {
    const full = await backup('vm1');
    first = full.restorePointId;
    for (const d of full.disks) expect({ diskId: d.diskId, knownFrom: d.knownFrom, known: d.known }).toEqual({ diskId: d.diskId, knownFrom: undefined, known: undefined });
    // disk1 holds 24 MiB of data beside its filesystem
    expect(full.disks[1].written).toBeGreaterThan(24 * MiB);
  }, 240_000);

  it("a clone's first full starts from the other VM's point and sends only what differs, zeroes included; it reads back bit for bit", async () => {
    // the clone's own changes: 1 MiB of new data, and 2 MiB of vm1's data zeroed
    await run('qemu-io', ['-f', 'qcow2', '-c', `write -P 0x7e ${80 * MiB} ${MiB}`, '-c', `write -z ${90 * MiB} ${2 * MiB}`, vm2Disks()[1]]);
    const clone = await backup('vm2');
    expect(clone.disks.map((d) => d.knownFrom)).toEqual([`chunks/points/vm1/${first}/disk0.idx`, `chunks/points/vm1/${first}/disk1.idx`]);
    // disk0 is vm1's byte for byte; disk1 differs in 1 MiB of data and 2 MiB of zeroes
    expect(clone.disks.map((d) => [d.diskId, d.written, d.zeroed])).toEqual([
      ['disk0', 0, 0],
      ['disk1', MiB, 2 * MiB],
    ]);
    expect(clone.disks[1].known).toBe(96 * MiB - 3 * MiB);
    await expectReadsBack(clone.restorePointId, vm2Disks());
  }, 240_000);

  it("a later full of a VM starts from that VM's own newest point, not the clone's newer one", async () => {
    await run('qemu-io', ['-f', 'qcow2', '-c', `write -P 0x31 ${8 * MiB} ${512 * 1024}`, lab.vm.disks[0].path]);
    const again = await backup('vm1');
    expect(again.disks.map((d) => d.knownFrom)).toEqual([`chunks/points/vm1/${first}/disk0.idx`, `chunks/points/vm1/${first}/disk1.idx`]);
    expect(again.disks.map((d) => [d.diskId, d.written, d.zeroed])).toEqual([
      ['disk0', 512 * 1024, 0],
      ['disk1', 0, 0],
    ]);
    await expectReadsBack(again.restorePointId, lab.vm.disks.map((d) => d.path));
    // an incremental sends its changes as before, and is no full started from anything else
    await run('qemu-io', ['-f', 'qcow2', '-c', `write -P 0x32 ${9 * MiB} ${64 * 1024}`, lab.vm.disks[0].path]);
    const incremental = await backup('vm1', 'auto');
    expect(incremental.disks.map((d) => [d.diskId, d.written, d.knownFrom])).toEqual([
      ['disk0', 64 * 1024, undefined],
      ['disk1', 0, undefined],
    ]);
    await expectReadsBack(incremental.restorePointId, lab.vm.disks.map((d) => d.path));
  }, 240_000);

  it("never starts from a point of another agent's VM, whatever its disks' sizes: that agent would learn what the other VM holds", async () => {
    const otherDir = join(lab.dir, 'other-agent');
    const env = { SENDENSE_TOKEN: LAB_TOKEN, SENDENSE_AGENT_DIR: otherDir, SENDENSE_LOG_LEVEL: 'warn' };
    const registered = spawnSendense(['agent', 'register', '--hub', `http://127.0.0.1:${lab.apiPort}`, '--name', 'other-host'], env);
    expect((await registered.exited).code).toBe(0);
    // its VM's disk is a copy of vm1's disk0: the same size and, block for block, the same content
    mkdirSync(join(otherDir, 'disks'), { recursive: true });
    const disk = join(otherDir, 'disks', 'disk0.qcow2');
    await run('qemu-img', ['convert', '-q', '-f', 'qcow2', '-O', 'qcow2', lab.vm.disks[0].path, disk]);
    const inventory = join(otherDir, 'inventory.json');
    writeFileSync(inventory, JSON.stringify({ vms: [{ id: 'vm3', name: 'vm3', disks: [{ id: 'disk0', path: disk }] }] }));
    const other = spawnSendense(['agent', 'run', '--inventory', inventory], env);
    try {
      await lab.until(async () => ((await lab.api('GET', '/api/v1/vms')).body as { vmId: string; agentConnected: boolean }[]).some((v) => v.vmId === 'vm3' && v.agentConnected), 30_000, 'the other agent to report vm3');
      const full = await backup('vm3');
      expect(full.disks.map((d) => [d.diskId, d.knownFrom, d.known])).toEqual([['disk0', undefined, undefined]]);
      expect(full.disks[0].written).toBeGreaterThan(MiB);
      await expectReadsBack(full.restorePointId, [disk]);
      // and vm1's agent is not offered vm3's point either: vm1's next full starts from vm1's own
      const mine = await backup('vm1');
      expect(mine.disks[0].knownFrom).toMatch(/^chunks\/points\/vm1\//);
    } finally {
      other.child.kill('SIGTERM');
      await other.exited;
    }
  }, 240_000);

  it('the digests of what a target holds go to the agent of that job alone: a malformed id is refused and nothing else is answered', async () => {
    const jobs = (await lab.api('GET', '/api/v1/backups?vmId=vm1&limit=10')).body.jobs as { jobId: string }[];
    expect((await lab.api('GET', `/api/v1/backups/not-a-uuid/disks/disk0/known-digests`)).status).toBe(400);
    expect((await lab.api('GET', `/api/v1/backups/${jobs[0].jobId}/disks/..%2Fetc/known-digests`)).status).toBe(400);
    // the job has ended: its target and what it started from are gone
    expect((await lab.api('GET', `/api/v1/backups/${jobs[0].jobId}/disks/disk0/known-digests`)).status).toBe(409);
    expect(processesMentioning(lab.hubDataDir).filter((p) => p.cmdline.includes('chunk-nbd'))).toEqual([]);
    expect((await lab.api('GET', '/api/v1/nbd/ports')).body).toEqual([]);
  }, 60_000);
});
