import { execFile } from 'node:child_process';
import { createHash } from 'node:crypto';
import { createReadStream, existsSync, rmSync } from 'node:fs';
import { join } from 'node:path';
import { promisify } from 'node:util';
import { clusterBytes, MiB, sameContent, Write, writeToDisk } from '../fixtures/vm/sample-vm';
import { BackupLab, LAB_TOKEN } from '../support/backup-lab';
import { processesMentioning, spawnSendense } from '../support/processes';

const run = promisify(execFile);
const CLEAN = { qemuNbd: [], leases: 0, strayFiles: [] };
const MAX_DEPTH = 3;

type Point = { restorePointId: string; type: string; parentId: string | null; disks: { diskId: string; file: string; parentFile: string | null; digests: { blocks: number } | null }[] };

/**
 * A repository that keeps chains at most MAX_DEPTH points long, with a real hub and agent: the backup after a full
 * chain is a synthetic full (the hub copies the newest point's view, the agent sends only the changes), no chain ever
 * grows past the limit, every point (the old chains' too) restores and verifies bit for bit, and a hub killed while it
 * copies leaves no half-written point behind.
 */
describe('chains never exceed the repository maxChainDepth', () => {
  const lab = new BackupLab({}, {}, { maxChainDepth: MAX_DEPTH });
  /** SHA-256 of every disk's bytes at each point, taken from the VM's disks when the point was backed up. */
  const expected = new Map<string, Record<string, string>>();
  let round = 0;

  beforeAll(async () => {
    // disk1 holds 192 MiB of data, so copying a point's view takes long enough to kill the hub in the middle of it
    await lab.start([64 * MiB, 256 * MiB], [0, 192 * MiB]);
  }, 240_000);
  afterAll(() => lab.close(), 60_000);

  const points = async (): Promise<Point[]> => (await lab.api('GET', `/api/v1/vms/vm1/restore-points?repositoryId=${lab.repositoryId}`)).body;
  /** A pruned point is recycled, then purged (its files merged away, its row gone); only then is nothing of it left. */
  const prunedTo = (keep: number) =>
    lab.until(async () => (await points()).length === keep && (await lab.api('GET', '/api/v1/recycle-bin')).body.length === 0, 120_000, `the chain to be pruned to ${keep} points and what was pruned purged`);
  const depth = (all: Point[], p: Point): number => (p.parentId ? 1 + depth(all, all.find((q) => q.restorePointId === p.parentId)!) : 1);
  const sha = (file: string) =>
    new Promise<string>((resolve, reject) => {
      const hash = createHash('sha256');
      createReadStream(file).on('data', (d) => hash.update(d)).on('end', () => resolve(hash.digest('hex'))).on('error', reject);
    });
  /** Each disk's bytes as the VM sees them now, hashed. */
  async function disksNow(): Promise<Record<string, string>> {
    const out: Record<string, string> = {};
    for (const d of lab.vm.disks) {
      const raw = join(lab.dir, `${d.diskId}-now.raw`);
      await run('qemu-img', ['convert', '-q', '-U', '-O', 'raw', d.path, raw]);
      out[d.diskId] = await sha(raw);
      rmSync(raw);
    }
    return out;
  }
  const change = async (): Promise<Record<string, Write[]>> => {
    round++;
    const writes = { disk0: [{ offset: (8 + round) * MiB, length: 70_000, pattern: 0x10 + round }], disk1: [{ offset: (20 + 3 * round) * MiB, length: MiB, pattern: 0x30 + round }] };
    for (const d of lab.vm.disks) await writeToDisk(d.path, writes[d.diskId as 'disk0' | 'disk1']);
    return writes;
  };
  async function backup(): Promise<{ job: any; point: Point; decided: any; moved: Record<string, number> }> {
    const jobId = await lab.backup('auto');
    const job = await lab.waitForJob(jobId, 120_000);
    expect(job).toMatchObject({ status: 'completed' });
    const point: Point = (await lab.api('GET', `/api/v1/restore-points/${job.restorePointId}`)).body;
    expected.set(point.restorePointId, await disksNow());
    for (const d of lab.vm.disks) expect(await sameContent(d.path, join(lab.repoRoot, point.disks.find((x) => x.diskId === d.diskId)!.file))).toBe(true);
    const events = await lab.events(jobId);
    const moved = Object.fromEntries(events.filter((e) => e.type === 'DiskTransferCompleted').map((e) => [e.data.diskId, e.data.bytesWritten + e.data.bytesZeroed]));
    return { job, point, decided: events.find((e) => e.type === 'BackupTypeDecided')!.data, moved };
  }
  const sizes = (writes: Record<string, Write[]>) => Object.fromEntries(Object.entries(writes).map(([diskId, w]) => [diskId, clusterBytes(w)]));

  it('refuses a maxChainDepth that is not a whole number from 2 to 1000 with a 400 naming the field, and registers nothing', async () => {
    const before = (await lab.api('GET', '/api/v1/repositories')).body.length;
    for (const maxChainDepth of [1, 0, -4, 2.5, '7', 1001]) {
      const refused = await lab.api('POST', '/api/v1/repositories', { name: 'deep', kind: 'local', path: join(lab.dir, 'deep'), maxChainDepth });
      expect(refused.status).toBe(400);
      expect(JSON.stringify(refused.body.message)).toMatch(/maxChainDepth must be/);
    }
    expect((await lab.api('GET', '/api/v1/repositories')).body).toHaveLength(before);
    expect((await lab.api('GET', `/api/v1/repositories/${lab.repositoryId}`)).body.maxChainDepth).toBe(MAX_DEPTH);

    const env = { SENDENSE_HUB: `http://127.0.0.1:${lab.apiPort}`, SENDENSE_TOKEN: LAB_TOKEN };
    const bad = spawnSendense(['repository', 'add', '--name', 'cli-deep', '--path', join(lab.dir, 'cli-deep'), '--max-chain-depth', 'ten'], env);
    expect((await bad.exited).code).not.toBe(0);
    expect(bad.output()).toMatch(/maxChainDepth must be/);
    const cli = spawnSendense(['repository', 'add', '--name', 'cli-deep', '--path', join(lab.dir, 'cli-deep'), '--max-chain-depth', '12'], env);
    expect((await cli.exited).code).toBe(0);
    expect(cli.output()).toMatch(/chains of at most 12 points/);
    const added = (await lab.api('GET', '/api/v1/repositories')).body.find((r: { name: string }) => r.name === 'cli-deep');
    expect(added.maxChainDepth).toBe(12);
  });

  it('after MAX_DEPTH points the next backup is a synthetic full: only the changes are read, the new file stands alone, and the next incremental builds on it', async () => {
    expect((await backup()).point).toMatchObject({ type: 'full', parentId: null });
    let newest: Point | undefined;
    for (let i = 1; i < MAX_DEPTH; i++) {
      const writes = await change();
      const { point, moved } = await backup();
      expect(point).toMatchObject({ type: 'incremental' });
      expect(moved).toEqual(sizes(writes));
      newest = point;
    }
    const writes = await change();
    const synthetic = await backup();
    expect(synthetic.job).toMatchObject({ type: 'full', typeReason: `the chain holds ${MAX_DEPTH} restore points (the repository's maxChainDepth is ${MAX_DEPTH}): a synthetic full of ${newest!.restorePointId} with the changes since it starts a new chain` });
    expect(synthetic.decided).toMatchObject({ type: 'full', sincePointId: newest!.restorePointId, synthesizedFrom: newest!.restorePointId });
    // the VM was read as for an incremental: exactly the clusters written since the newest point
    expect(synthetic.moved).toEqual(sizes(writes));
    expect(synthetic.point).toMatchObject({ type: 'full', parentId: null });
    for (const disk of synthetic.point.disks) {
      expect(disk.parentFile).toBeNull();
      expect((await run('qemu-img', ['info', '-U', '--output=json', join(lab.repoRoot, disk.file)])).stdout).not.toMatch(/backing-filename/);
      // its digests cover the whole view it copied, not only the changes
      expect(disk.digests!.blocks).toBeGreaterThan(sizes(writes)[disk.diskId] / (64 * 1024));
    }
    const next = await change();
    const after = await backup();
    expect(after.point).toMatchObject({ type: 'incremental', parentId: synthetic.point.restorePointId });
    expect(after.moved).toEqual(sizes(next));
    expect(await lab.leftovers()).toEqual(CLEAN);
  }, 300_000);

  it('a hub killed while it copies the view of a synthetic full records no point: after a restart the job is failed, its half-written file gone, and the next backup does it again', async () => {
    // fill the chain up to the limit
    while (depth(await points(), (await points()).at(-1)!) < MAX_DEPTH) {
      await change();
      await backup();
    }
    const before = (await points()).map((p) => p.restorePointId);
    const first = await change();
    const jobId = await lab.backup('auto');
    let copying: { pid: number; cmdline: string } | undefined;
    const deadline = Date.now() + 60_000;
    while (!copying && Date.now() < deadline) {
      copying = processesMentioning(lab.repoRoot).find((p) => p.cmdline.startsWith('qemu-img convert'));
      if (!copying) await new Promise((r) => setTimeout(r, 2));
    }
    expect(copying).toBeDefined();
    // the whole host going down: the hub and the copy it runs
    await lab.stop(lab.hub, 'SIGKILL');
    try {
      process.kill(copying!.pid, 'SIGKILL');
    } catch {
      /* it finished on its own meanwhile */
    }
    const target = copying!.cmdline.split(' ').find((w) => w.startsWith(join(lab.repoRoot, 'vm1')) && w.endsWith('.qcow2') && !before.some((id) => w.includes(id)))!;
    // the copy the hub was writing is there, named after the new point, and no point names it
    expect(existsSync(target)).toBe(true);
    await lab.startHub();
    const failed = await lab.waitForJob(jobId, 60_000);
    expect(failed).toMatchObject({ status: 'failed', type: 'full' });
    expect(failed.error).toMatch(/hub restart/);
    await lab.until(async () => (await lab.leftovers()).qemuNbd.length === 0, 10_000, 'exports to stop');
    expect(await lab.leftovers()).toEqual(CLEAN);
    expect(existsSync(target)).toBe(false);
    expect(processesMentioning(target)).toEqual([]);
    expect((await points()).map((p) => p.restorePointId)).toEqual(before);
    await lab.until(async () => (await lab.api('GET', '/api/v1/agents')).body[0]?.connected === true, 30_000, 'the agent to reconnect');

    const second = await change();
    const again = await backup();
    expect(again.point).toMatchObject({ type: 'full', parentId: null });
    expect(again.decided.synthesizedFrom).toBe(before.at(-1));
    // the agent committed no change tracking for the failed job: this one carries both rounds of writes
    expect(again.moved).toEqual(sizes({ disk0: [...first.disk0, ...second.disk0], disk1: [...first.disk1, ...second.disk1] }));
    expect(await lab.leftovers()).toEqual(CLEAN);
  }, 300_000);

  it('no chain is longer than the limit, and every point, of the old chains too, verifies by content and restores bit for bit', async () => {
    await change();
    await backup();
    const all = await points();
    expect(all.length).toBeGreaterThanOrEqual(2 * MAX_DEPTH + 2);
    expect(all.filter((p) => p.type === 'full').length).toBeGreaterThanOrEqual(3);
    for (const p of all) expect(depth(all, p)).toBeLessThanOrEqual(MAX_DEPTH);
    // what qemu opens for the newest point: never more files than the limit
    const newest = all.at(-1)!;
    const chain = JSON.parse((await run('qemu-img', ['info', '-U', '--backing-chain', '--output=json', join(lab.repoRoot, newest.disks[1].file)])).stdout);
    expect(chain.length).toBeLessThanOrEqual(MAX_DEPTH);

    const verified = await lab.api('POST', `/api/v1/repositories/${lab.repositoryId}/verify`);
    expect(verified.status).toBe(201);
    expect(verified.body).toMatchObject({ ok: true, mismatches: [] });
    expect(verified.body.points.map((p: { restorePointId: string; ok: boolean; digests: string }) => [p.restorePointId, p.ok, p.digests])).toEqual(all.map((p) => [p.restorePointId, true, 'all']));
    await expectRestoresExact(all);
  }, 300_000);

  it('retention removes the old chains point by point, and what it keeps still verifies and restores bit for bit', async () => {
    const keep = MAX_DEPTH + 1;
    const policy = await lab.api('POST', '/api/v1/policies', { name: 'depth', vms: { ids: ['vm1'] }, repositoryId: lab.repositoryId, schedule: { cron: '0 3 1 1 *', timezone: 'UTC' }, retention: { keepLast: keep }, rpoHours: 24, confirmPrune: true });
    expect(policy.status).toBe(201);
    expect((await lab.api('POST', `/api/v1/policies/${policy.body.policyId}/prune`)).status).toBe(200);
    await prunedTo(keep);
    const kept = await points();
    for (const p of kept) expect(depth(kept, p)).toBeLessThanOrEqual(MAX_DEPTH);
    for (const p of kept) {
      const verified = await lab.api('POST', `/api/v1/restore-points/${p.restorePointId}/verify`);
      expect(verified.body.content).toMatchObject({ ok: true, digests: 'all', mismatches: [] });
    }
    await expectRestoresExact(kept);
    expect(await lab.leftovers()).toEqual(CLEAN);
  }, 300_000);

  it('a limit changed after registration (sendense repository set, PATCH) decides the next backups: lowered, a chain at the new limit ends in a synthetic full; raised, the chain grows again', async () => {
    const env = { SENDENSE_HUB: `http://127.0.0.1:${lab.apiPort}`, SENDENSE_TOKEN: LAB_TOKEN };
    const bad = spawnSendense(['repository', 'set', lab.repositoryId, '--max-chain-depth', 'ten'], env);
    expect((await bad.exited).code).not.toBe(0);
    expect(bad.output()).toMatch(/maxChainDepth must be/);
    expect((await lab.api('GET', `/api/v1/repositories/${lab.repositoryId}`)).body.maxChainDepth).toBe(MAX_DEPTH);
    const lowered = spawnSendense(['repository', 'set', lab.repositoryId, '--max-chain-depth', '2'], env);
    expect((await lowered.exited).code).toBe(0);
    expect(lowered.output()).toMatch(/chains of at most 2 points/);
    expect((await lab.api('GET', `/api/v1/repositories/${lab.repositoryId}`)).body.maxChainDepth).toBe(2);

    const newestDepth = async () => {
      const all = await points();
      return depth(all, all.at(-1)!);
    };
    while ((await newestDepth()) < 2) {
      await change();
      expect((await backup()).point.type).toBe('incremental');
    }
    const newest = (await points()).at(-1)!;
    const at = await newestDepth();
    await change();
    const synthetic = await backup();
    expect(synthetic.job).toMatchObject({ type: 'full', typeReason: `the chain holds ${at} restore points (the repository's maxChainDepth is 2): a synthetic full of ${newest.restorePointId} with the changes since it starts a new chain` });
    expect(synthetic.decided.synthesizedFrom).toBe(newest.restorePointId);
    await change();
    expect((await backup()).point).toMatchObject({ type: 'incremental', parentId: synthetic.point.restorePointId });
    expect(await newestDepth()).toBe(2);

    // at the lowered limit now; raised again, the same chain takes one more incremental
    expect((await lab.api('PATCH', `/api/v1/repositories/${lab.repositoryId}`, { maxChainDepth: MAX_DEPTH })).body.maxChainDepth).toBe(MAX_DEPTH);
    await change();
    const grown = await backup();
    expect(grown.decided).toMatchObject({ type: 'incremental', synthesizedFrom: null });
    expect(await newestDepth()).toBe(3);
    // the policy of the test before still governs vm1: after each backup its retention recycles the oldest point and
    // purges it by a merge, whose journal's temp files exist while the merge runs
    await prunedTo(MAX_DEPTH + 1);
    expect(await lab.leftovers()).toEqual(CLEAN);

    // a policy simulated on this history: the synthetic fulls it holds are not taken for fulls, and it predicts them at the repository's limit
    const completed = (await lab.api('GET', '/api/v1/backups?vmId=vm1&limit=100')).body.jobs.filter((j: { status: string }) => j.status === 'completed');
    const recordedSynthetic = completed.filter((j: { typeReason: string }) => / a synthetic full of /.test(j.typeReason)).length;
    expect(recordedSynthetic).toBeGreaterThanOrEqual(3);
    const from = new Date();
    const simulated = await lab.api('POST', '/api/v1/policies/simulate', {
      policy: { name: 'depth-sim', vms: { ids: ['vm1'] }, repositoryId: lab.repositoryId, schedule: { cron: '0 3 * * *', timezone: 'UTC' }, retention: { keepLast: 50 }, rpoHours: 30 },
      from: from.toISOString(),
      to: new Date(from.getTime() + 10 * 24 * 3_600_000).toISOString(),
    });
    expect(simulated.status).toBe(200);
    expect(simulated.body.maxChainDepth).toBe(MAX_DEPTH);
    const [vm] = simulated.body.vms;
    expect(vm.model).toMatchObject({ fulls: completed.filter((j: { type: string }) => j.type === 'full').length - recordedSynthetic, syntheticFulls: recordedSynthetic });
    expect(vm.pointsAtEnd.map((p: { type: string; synthesizedFrom: string | null }) => (p.synthesizedFrom ? 'S' : p.type === 'full' ? 'F' : 'I')).join('')).toBe('FIISIISIIS');
    expect(vm.syntheticFulls).toBe(3);
  }, 300_000);

  /** Each point's disks downloaded as raw images through the API, byte for byte the disks when the point was taken. */
  async function expectRestoresExact(all: Point[]): Promise<void> {
    for (const p of all) {
      for (const disk of p.disks) {
        const res = await fetch(`http://127.0.0.1:${lab.apiPort}/api/v1/restore-points/${p.restorePointId}/disks/${disk.diskId}/image?format=raw`, { headers: { Authorization: `Bearer ${LAB_TOKEN}` } });
        expect(res.status).toBe(200);
        const hash = createHash('sha256');
        for await (const chunk of res.body as unknown as AsyncIterable<Uint8Array>) hash.update(chunk);
        expect([p.restorePointId, disk.diskId, hash.digest('hex')]).toEqual([p.restorePointId, disk.diskId, expected.get(p.restorePointId)![disk.diskId]]);
      }
    }
  }
});
