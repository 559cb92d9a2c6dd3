import { execFile } from 'node:child_process';
import { createWriteStream, existsSync, readdirSync } from 'node:fs';
import { join } from 'node:path';
import { Readable } from 'node:stream';
import { pipeline } from 'node:stream/promises';
import { promisify } from 'node:util';
import { MiB } from '../fixtures/vm/sample-vm';
import { BackupLab, LAB_TOKEN } from '../support/backup-lab';
import { FakedClock } from '../support/faked-clock';

const run = promisify(execFile);
const DAY = 86_400_000;
const START = Date.parse('2024-06-01T00:00:00Z');

/**
 * An immutable chunks repository on real files with a real hub and agent, the hub's clock moved by libfaketime: a
 * point's index, digests and manifest and every pack it reads through carry the immutable attribute, deletes wait for
 * the lock, and a pack goes (its attribute cleared by the collection) only once no point names it.
 */
describe('immutable chunks repository (real hub + agent, chattr on real files, the hub clock moved past the lock)', () => {
  const clock = new FakedClock('immutable-chunks');
  const lab = new BackupLab(clock.env, {}, { layout: 'chunks', immutableDays: 1 });
  const packsDir = () => join(lab.repoRoot, 'chunks', 'packs');
  const packFiles = () => readdirSync(packsDir()).filter((f) => /^[0-9a-f]{16}\.(pack|idx)$/.test(f)).map((f) => join(packsDir(), f));
  const attributes = async (file: string) => (await run('lsattr', ['-d', file])).stdout.split(/\s+/)[0];
  type Point = { restorePointId: string; createdAt: string; disks: { diskId: string; file: string; digests: { file: string } | null }[] };
  const points = async (): Promise<Point[]> => (await lab.api('GET', `/api/v1/vms/vm1/restore-points?repositoryId=${lab.repositoryId}`)).body;

  beforeAll(async () => {
    clock.requireLibrary();
    clock.at(START);
    await lab.start([64 * MiB, 96 * MiB], [0, 8 * MiB]);
  }, 180_000);
  afterAll(async () => {
    // whatever a failed assertion left immutable would keep the lab's directory from being removed
    if (lab.dir) await run('chattr', ['-R', '-i', lab.dir]).catch(() => undefined);
    await lab.close();
    clock.remove();
  }, 60_000);

  it('seals each point with the packs it reads, refuses deletes until the lock ends, and frees a pack only once no point names it', async () => {
    expect((await lab.api('GET', `/api/v1/repositories/${lab.repositoryId}`)).body).toMatchObject({ layout: 'chunks', immutableDays: 1 });
    expect((await lab.waitForJob(await lab.backup('full'), 120_000)).status).toBe('completed');
    await run('qemu-io', ['-f', 'qcow2', '-c', `write -P 0x5d ${40 * MiB} ${2 * MiB}`, lab.vm.disks[1].path]);
    expect((await lab.waitForJob(await lab.backup('auto'), 120_000)).status).toBe('completed');
    const [full, incremental] = await points();

    // the point's own files and every pack (with its index) carry the attribute; even root cannot remove one
    const sealed = [...[full, incremental].flatMap((p) => [...p.disks.flatMap((d) => [d.file, d.digests!.file]), join('vm1', 'manifests', `${p.restorePointId}.json`)]).map((f) => join(lab.repoRoot, f)), ...packFiles()];
    expect(packFiles().length).toBeGreaterThanOrEqual(2);
    for (const file of sealed) expect({ file, attributes: await attributes(file) }).toEqual({ file, attributes: expect.stringContaining('i') });
    const pack = packFiles().find((f) => f.endsWith('.pack'))!;
    await expect(run('rm', ['-f', pack])).rejects.toMatchObject({ stderr: expect.stringContaining('Operation not permitted') });

    const until = (p: Point) => new Date(Date.parse(p.createdAt) + DAY).toISOString();
    const rule = `repository lab keeps its restore points immutable for 1 day(s) after they were written`;
    for (const p of [incremental, full]) {
      expect(await lab.api('DELETE', `/api/v1/restore-points/${p.restorePointId}`)).toMatchObject({ status: 409, body: { message: `restore point ${p.restorePointId} is immutable until ${until(p)}: ${rule}` } });
    }
    // a collection finds nothing to free and leaves every pack sealed
    const collected = await lab.api('POST', `/api/v1/repositories/${lab.repositoryId}/gc`);
    expect(collected).toMatchObject({ status: 200, body: { packsRemoved: 0 } });
    for (const file of packFiles()) expect(await attributes(file)).toContain('i');

    // past the locks: the full goes; the incremental still reads every block, through packs that stay sealed
    clock.at(Date.parse(until(incremental)) + 3_600_000);
    expect((await lab.api('DELETE', `/api/v1/restore-points/${full.restorePointId}`)).status).toBe(200);
    expect(existsSync(join(lab.repoRoot, full.disks[0].file))).toBe(false);
    for (const [n, disk] of lab.vm.disks.entries()) {
      const out = join(lab.dir, `incremental-${n}.raw`);
      const res = await fetch(`http://127.0.0.1:${lab.apiPort}/api/v1/restore-points/${incremental.restorePointId}/disks/${disk.diskId}/image?format=raw`, { headers: { Authorization: `Bearer ${LAB_TOKEN}` } });
      expect(res.status).toBe(200);
      await pipeline(Readable.fromWeb(res.body as any), createWriteStream(out));
      await run('qemu-img', ['compare', '-q', '-f', 'raw', '-F', 'qcow2', out, disk.path]);
    }
    expect((await lab.api('POST', `/api/v1/restore-points/${incremental.restorePointId}/verify`)).body.content).toMatchObject({ ok: true, digests: 'all' });
    expect(packFiles().length).toBeGreaterThanOrEqual(2);
    for (const file of packFiles()) expect(await attributes(file)).toContain('i');

    // the last point goes: the collection after the delete clears and removes every pack
    expect((await lab.api('DELETE', `/api/v1/restore-points/${incremental.restorePointId}`)).status).toBe(200);
    await lab.until(async () => packFiles().length === 0, 60_000, 'the collection after the delete to remove every pack');
    expect(await points()).toEqual([]);
  }, 300_000);
});
