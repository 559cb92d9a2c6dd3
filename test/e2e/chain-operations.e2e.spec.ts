import { execFile } from 'node:child_process';
import { existsSync, mkdirSync, readdirSync, rmdirSync, rmSync } from 'node:fs';
import { join } from 'node:path';
import { promisify } from 'node:util';
import { clusterBytes, MiB, sameContent, Write, writeToDisk } from '../fixtures/vm/sample-vm';
import { BackupLab } from '../support/backup-lab';
import { processesMentioning } from '../support/processes';

const run = promisify(execFile);
const CLEAN = { qemuNbd: [], leases: 0, strayFiles: [] };

type Point = { restorePointId: string; type: string; parentId: string | null; status: string; disks: { diskId: string; file: string }[]; verification: { ok: boolean; problems: string[] } | null };

/** Faults injected into real chain operations and real backups: nothing is left busy, nothing is silently lost. */
describe('chain operations and backups never wedge each other', () => {
  const lab = new BackupLab();
  beforeAll(async () => {
    await lab.start([64 * MiB, 512 * MiB], [0, 320 * MiB]);
    expect(await lab.waitForJob(await lab.backup('full'), 120_000)).toMatchObject({ status: 'completed' });
  }, 240_000);
  afterAll(async () => {
    await run('chattr', ['-R', '-i', lab.repoRoot]).catch(() => undefined);
    await lab.close();
  }, 60_000);

  const points = async (): Promise<Point[]> => (await lab.api('GET', `/api/v1/vms/vm1/restore-points?repositoryId=${lab.repositoryId}`)).body;
  const fileOf = (p: Point, diskId: string) => join(lab.repoRoot, p.disks.find((d) => d.diskId === diskId)!.file);
  const immutable = (path: string, on: boolean) => run('chattr', [on ? '+i' : '-i', path]);
  const writeBoth = async (writes: Record<string, Write[]>) => {
    for (const d of lab.vm.disks) await writeToDisk(d.path, writes[d.diskId]);
  };
  /** A backup that completes, equals the disks bit for bit, and (for an incremental) moved exactly the clusters written since `since`. */
  async function backupEqualsDisks(expected: { type: 'full' | 'incremental'; parentId?: string; writes?: Record<string, Write[]> }): Promise<Point> {
    const jobId = await lab.backup('auto');
    const job = await lab.waitForJob(jobId, 120_000);
    expect(job).toMatchObject({ status: 'completed', type: expected.type });
    const point: Point = (await lab.api('GET', `/api/v1/restore-points/${job.restorePointId}`)).body;
    if (expected.parentId) expect(point.parentId).toBe(expected.parentId);
    for (const d of lab.vm.disks) expect(await sameContent(d.path, fileOf(point, d.diskId))).toBe(true);
    if (expected.writes) {
      for (const e of (await lab.events(jobId)).filter((x) => x.type === 'DiskTransferCompleted')) expect(e.data.bytesWritten + e.data.bytesZeroed).toBe(clusterBytes(expected.writes[e.data.diskId]));
    }
    return point;
  }

  it('the agent commits change tracking only once the hub recorded the point: a backup the hub failed to record is covered by the next incremental, exactly', async () => {
    const [recorded] = (await points()).slice(-1);
    const first: Record<string, Write[]> = { disk0: [{ offset: 3 * MiB, length: 70_000, pattern: 0x61 }], disk1: [{ offset: 100 * MiB, length: 160 * MiB, pattern: 0x62 }] };
    await writeBoth(first);
    // The agent transfers everything and reports finished; the hub then cannot write the manifest (a directory
    // stands where it goes), so the point is never recorded. The large write leaves time to set that up.
    const jobId = await lab.backup('auto');
    let restorePointId: string | null = null;
    await lab.until(async () => (restorePointId = (await lab.job(jobId)).restorePointId) !== null, 30_000, 'the restore point id');
    const blocker = join(lab.repoRoot, 'vm1', 'manifests', `${restorePointId}.json`);
    mkdirSync(blocker);
    const failed = await lab.waitForJob(jobId, 120_000);
    rmdirSync(blocker);
    // The injected directory also stopped the cleanup at the manifest, before the point's digest files.
    for (const f of readdirSync(join(lab.repoRoot, 'vm1', 'manifests'))) if (f.startsWith(`${restorePointId}.`)) rmSync(join(lab.repoRoot, 'vm1', 'manifests', f));
    expect(failed).toMatchObject({ status: 'failed', failedPhase: 'finalizing', type: 'incremental' });
    const reports = (await lab.events(jobId)).map((e) => e.type);
    expect(reports.filter((t) => t === 'DiskTransferCompleted')).toHaveLength(2);
    expect(reports).toContain('SnapshotRemoved');
    expect((await points()).map((p) => p.restorePointId).at(-1)).toBe(recorded.restorePointId);
    const second: Record<string, Write[]> = { disk0: [{ offset: 30 * MiB, length: 4096, pattern: 0x63 }], disk1: [{ offset: 200 * MiB, length: 1 * MiB, pattern: 0x64 }] };
    await writeBoth(second);
    // Built on the last RECORDED point, it moves the clusters of both rounds of writes and nothing else.
    await backupEqualsDisks({ type: 'incremental', parentId: recorded.restorePointId, writes: { disk0: [...first.disk0, ...second.disk0], disk1: [...first.disk1, ...second.disk1] } });
    expect(await lab.leftovers()).toEqual(CLEAN);
  }, 300_000);

  it('a delete whose file surgery fails before changing anything is undone at once: 500 with the reason, the point intact, the next backup builds on it', async () => {
    const newest = (await points()).at(-1)!;
    const file = fileOf(newest, 'disk0');
    await immutable(file, true);
    try {
      const refused = await lab.api('DELETE', `/api/v1/restore-points/${newest.restorePointId}`);
      expect(refused.status).toBe(500);
      expect(refused.body.message).toMatch(new RegExp(`deleting restore point ${newest.restorePointId} failed and was undone \\(the point is unchanged\\): .*(not permitted|EPERM)`));
      expect((await lab.api('GET', `/api/v1/restore-points/${newest.restorePointId}`)).body).toMatchObject({ status: 'available', verification: null });
      const writes: Record<string, Write[]> = { disk0: [{ offset: 5 * MiB, length: 8192, pattern: 0x71 }], disk1: [{ offset: 10 * MiB, length: 64 * 1024, pattern: 0x72 }] };
      await writeBoth(writes);
      await backupEqualsDisks({ type: 'incremental', parentId: newest.restorePointId, writes });
    } finally {
      await immutable(file, false);
    }
    const types = (await lab.api('GET', `/api/v1/audit/streams/chain-vm1-${lab.repositoryId}?limit=1000`)).body.events.map((e: { type: string }) => e.type);
    expect(types.slice(-3)).toEqual(['RestorePointDeleteStarted', 'RestorePointDeleteFailed', 'RestorePointAdded']);
    expect(await lab.leftovers()).toEqual(CLEAN);
  }, 300_000);

  it('a merge that fails midway is never left deleting: 500 with the reason, the point marked unusable, backups go on, a second DELETE finishes it', async () => {
    const [oldest, child] = await points();
    const childFile = fileOf(child, 'disk1');
    await immutable(childFile, true);
    try {
      const refused = await lab.api('DELETE', `/api/v1/restore-points/${oldest.restorePointId}`);
      expect(refused.status).toBe(500);
      expect(refused.body.message).toMatch(new RegExp(`deleting restore point ${oldest.restorePointId} stopped midway: .*; the point is marked unusable and DELETE it again to finish`));
      expect((await lab.api('GET', `/api/v1/restore-points/${oldest.restorePointId}`)).body).toMatchObject({ status: 'available', verification: { ok: false } });
      const writes: Record<string, Write[]> = { disk0: [{ offset: 7 * MiB, length: 4096, pattern: 0x81 }], disk1: [{ offset: 11 * MiB, length: 4096, pattern: 0x82 }] };
      await writeBoth(writes);
      await backupEqualsDisks({ type: 'incremental', writes });
    } finally {
      await immutable(childFile, false);
    }
    expect((await lab.api('DELETE', `/api/v1/restore-points/${oldest.restorePointId}`)).status).toBe(200);
    const after = await points();
    expect(after[0]).toMatchObject({ restorePointId: child.restorePointId, type: 'full', parentId: null, status: 'available' });
    for (const d of lab.vm.disks) expect(await sameContent(d.path, fileOf(after.at(-1)!, d.diskId))).toBe(true);
    expect(readdirSync(join(lab.repoRoot, 'vm1', 'disk1')).filter((f) => f.startsWith('.merge-'))).toEqual([]);
    expect(await lab.leftovers()).toEqual(CLEAN);
  }, 300_000);

  it('a merge killed midway with the hub (SIGKILL) is finished at the next start; a backup requested meanwhile waits for it and builds on the result', async () => {
    // A large child makes the commit take long enough to be caught running.
    await writeBoth({ disk0: [{ offset: 1 * MiB, length: 32 * MiB, pattern: 0x91 }], disk1: [{ offset: 0, length: 300 * MiB, pattern: 0x92 }] });
    await backupEqualsDisks({ type: 'incremental' });
    const [oldest, child] = await points();
    const deleting = lab.api('DELETE', `/api/v1/restore-points/${oldest.restorePointId}`).catch(() => null);
    // The merge's journal exists from before its commit until its end: the hub is killed while it is there.
    const dirs = lab.vm.disks.map((d) => join(lab.repoRoot, 'vm1', d.diskId));
    const journals = () => dirs.flatMap((dir) => readdirSync(dir).filter((f) => f.startsWith('.merge-')).map((f) => join(dir, f)));
    const deadline = Date.now() + 30_000;
    while (journals().length === 0) {
      if (Date.now() > deadline) throw new Error('the merge never started');
      await new Promise((r) => setImmediate(r));
    }
    // What a service manager does to a killed hub's control group: the hub and its qemu-img go together.
    lab.hub!.child.kill('SIGKILL');
    for (const p of processesMentioning(lab.repoRoot).filter((x) => x.cmdline.includes('qemu-img'))) process.kill(p.pid, 'SIGKILL');
    await lab.hub!.exited;
    await deleting;
    expect(journals()).not.toEqual([]);
    await lab.startHub();
    const after = await points();
    expect(after.map((p) => p.restorePointId)).not.toContain(oldest.restorePointId);
    expect(after[0]).toMatchObject({ restorePointId: child.restorePointId, type: 'full', parentId: null, status: 'available' });
    expect(existsSync(fileOf(oldest, 'disk1'))).toBe(false);
    expect(readdirSync(join(lab.repoRoot, 'vm1', 'disk1')).filter((f) => f.startsWith('.merge-'))).toEqual([]);
    for (const d of lab.vm.disks) expect(await sameContent(d.path, fileOf(after.at(-1)!, d.diskId))).toBe(true);
    await lab.until(async () => (await lab.api('GET', '/api/v1/agents')).body[0]?.connected === true, 30_000, 'the agent to reconnect');

    // A delete under way and a backup requested at the same moment: the backup waits, then builds on the chain as the delete left it.
    const [next, nextChild] = await points();
    const [deleted, jobId] = await Promise.all([lab.api('DELETE', `/api/v1/restore-points/${next.restorePointId}`), lab.backup('auto')]);
    expect([200, 409]).toContain(deleted.status);
    const job = await lab.waitForJob(jobId, 120_000);
    // failed once in CI, quickly, on a loaded machine: what the job and the hub said is kept for the next time
    if (job.status !== 'completed') throw new Error(`backup ${job.status} (delete answered ${deleted.status}): ${JSON.stringify(job)}\n${lab.hub?.output().slice(-4000)}`);
    expect(job).toMatchObject({ status: 'completed', type: 'incremental' });
    const final = await points();
    if (deleted.status === 200) expect(final[0].restorePointId).toBe(nextChild.restorePointId);
    else expect(deleted.body.message).toMatch(/in use|running backup job/);
    for (const d of lab.vm.disks) expect(await sameContent(d.path, fileOf(final.at(-1)!, d.diskId))).toBe(true);
    expect(await lab.leftovers()).toEqual(CLEAN);
  }, 400_000);
});
