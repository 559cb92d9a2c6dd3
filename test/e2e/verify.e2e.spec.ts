import { execFile } from 'node:child_process';
import { createHash } from 'node:crypto';
import { open, readFile } from 'node:fs/promises';
import { join } from 'node:path';
import { promisify } from 'node:util';
import { MiB, writeToDisk } from '../fixtures/vm/sample-vm';
import { BackupLab, LAB_TOKEN } from '../support/backup-lab';

const run = promisify(execFile);

/** Checksums taken while backing up, and a verify that reads every block back: real hub, agent, qemu-nbd, qcow2 files. */
describe('verify reads every block back against the digests recorded at backup time', () => {
  const lab = new BackupLab();
  beforeAll(async () => lab.start(undefined, undefined, true), 120_000);
  afterAll(async () => lab.close(), 60_000);

  const points = async (vmId: string) => (await lab.api('GET', `/api/v1/vms/${vmId}/restore-points?repositoryId=${lab.repositoryId}`)).body;
  const verify = (restorePointId: string) => lab.api('POST', `/api/v1/restore-points/${restorePointId}/verify`);
  const backup = async (type: 'full' | 'auto', vmId: string) => {
    const job = await lab.waitForJob(await lab.backup(type, vmId));
    if (job.status !== 'completed') throw new Error(`backup of ${vmId} ${job.status}: ${JSON.stringify(job)}`);
    return job.restorePointId as string;
  };

  it('no false positives across 20 points; the repository verify reads each block once; merges and middle removals keep the survivors clean', async () => {
    const disks = ['disk0', 'disk1'].map((diskId) => ({ diskId, path: join(lab.dir, 'vm2', `${diskId}.qcow2`) }));
    const ids = [await backup('full', 'vm2')];
    for (let i = 1; i < 20; i++) {
      await writeToDisk(disks[i % 2].path, [{ offset: (i * 3 + 1) * MiB + i * 777, length: 70_000 + i * 1000, pattern: 0x10 + i }, { offset: 50 * MiB + i * 65536, length: 4096, zero: i % 3 === 0 }]);
      ids.push(await backup('auto', 'vm2'));
    }
    const listed = await points('vm2');
    expect(listed.map((p: { type: string }) => p.type)).toEqual(['full', ...Array(19).fill('incremental')]);
    // every disk of every point names its digest file, beside its manifest, and the manifest carries it for a rescan
    for (const p of listed) {
      for (const d of p.disks) expect(d.digests).toEqual({ file: `vm2/manifests/${p.restorePointId}.${d.diskId}.digests`, blocks: expect.any(Number) });
      const manifest = JSON.parse(await readFile(join(lab.repoRoot, 'vm2', 'manifests', `${p.restorePointId}.json`), 'utf8'));
      for (const d of manifest.disks) expect(createHash('sha256').update(await readFile(join(lab.repoRoot, d.digests.file))).digest('hex')).toBe(d.digests.sha256);
    }
    expect(await lab.leftovers()).toEqual({ qemuNbd: [], leases: 0, strayFiles: [] });

    const repo = await lab.api('POST', `/api/v1/repositories/${lab.repositoryId}/verify`);
    expect(repo.status).toBe(201);
    expect(repo.body).toMatchObject({ ok: true, mismatches: [] });
    expect(repo.body.points).toHaveLength(20);
    expect(repo.body.points.every((p: { ok: boolean; digests: string }) => p.ok && p.digests === 'all')).toBe(true);
    // each point's own blocks once: exactly the bytes the digest files describe
    const digestBlocks = listed.flatMap((p: { disks: { digests: { blocks: number } }[] }) => p.disks.map((d) => d.digests.blocks)).reduce((a: number, b: number) => a + b, 0);
    expect(repo.body.blocks).toBe(digestBlocks);
    expect(repo.body.bytesRead).toBeGreaterThan(0);
    expect(repo.body.bytesRead).toBeLessThanOrEqual(digestBlocks * 65536);
    expect((await points('vm2')).map((p: { integrity: string }) => p.integrity)).toEqual(Array(20).fill('verified'));

    expect((await lab.api('DELETE', `/api/v1/restore-points/${ids[0]}`)).status).toBe(200);
    expect((await lab.api('DELETE', `/api/v1/restore-points/${ids[10]}`)).status).toBe(200);
    for (const id of [ids[1], ids[11], ids[19]]) {
      const res = await verify(id);
      expect({ id, ok: res.body.content.ok, digests: res.body.content.digests, mismatches: res.body.content.mismatches }).toEqual({ id, ok: true, digests: 'all', mismatches: [] });
      expect(res.body.integrity).toBe('verified');
    }
    expect(await lab.leftovers()).toEqual({ qemuNbd: [], leases: 0, strayFiles: [] });
  }, 600_000);

  it('one flipped byte in a data cluster of a full: verify names the disk, the offset and both digests; the full and the incremental reading through it are corrupt; a download from the incremental says so; the next backup is a full with ChainBroken; an untouched point stays clean', async () => {
    const fullId = await backup('full', 'vm1');
    await writeToDisk(lab.vm.disks[0].path, [{ offset: 20 * MiB, length: 3 * MiB, pattern: 0xa2 }]);
    const incId = await backup('auto', 'vm1');
    for (const id of [fullId, incId]) {
      const clean = await verify(id);
      expect(clean.status).toBe(201);
      expect(clean.body.content).toMatchObject({ ok: true, digests: 'all', mismatches: [] });
      expect(clean.body.content.bytesRead).toBeGreaterThan(0);
      expect(clean.body.content.mibPerSecond).toBeGreaterThan(0);
      expect(clean.body.content.durationMs).toBeGreaterThanOrEqual(0);
      expect(clean.body).toMatchObject({ integrity: 'verified', verification: { ok: true, digests: 'all' } });
    }

    // the first data cluster of the full's disk0 file (guest offset 0 holds the ext4 superblock; the incremental did not rewrite it)
    const full = (await lab.api('GET', `/api/v1/restore-points/${fullId}`)).body;
    const file = join(lab.repoRoot, full.disks.find((d: { diskId: string }) => d.diskId === 'disk0').file);
    const map = JSON.parse((await run('qemu-img', ['map', '--output=json', '-U', file])).stdout) as { start: number; length: number; data: boolean; zero: boolean; offset?: number }[];
    const cluster = map.find((e) => e.data && !e.zero && e.offset !== undefined && e.start < 20 * MiB)!;
    const guestOffset = cluster.start + 1500;
    const handle = await open(file, 'r+');
    const byte = Buffer.alloc(1);
    await handle.read(byte, 0, 1, cluster.offset! + 1500);
    byte[0] ^= 0xff;
    await handle.write(byte, 0, 1, cluster.offset! + 1500);
    await handle.close();

    const damaged = await verify(fullId);
    expect(damaged.status).toBe(201);
    const blockOffset = guestOffset - (guestOffset % 65536);
    expect(damaged.body.content.ok).toBe(false);
    expect(damaged.body.content.mismatches).toEqual([
      { restorePointId: fullId, diskId: 'disk0', offset: blockOffset, length: 65536, expected: expect.stringMatching(/^[0-9a-f]{64}$/), actual: expect.stringMatching(/^[0-9a-f]{64}$/), readsThrough: [incId] },
    ]);
    const [mismatch] = damaged.body.content.mismatches;
    expect(mismatch.expected).not.toBe(mismatch.actual);
    expect(damaged.body.verification.problems.join('\n')).toContain(`disk0: block at offset ${blockOffset}`);
    expect(damaged.body.verification.problems.join('\n')).toContain(mismatch.expected);

    const listed = await points('vm1');
    const range = { diskId: 'disk0', offset: blockOffset, length: 65536, expected: mismatch.expected, actual: mismatch.actual, inPointId: fullId };
    expect(listed.map((p: { restorePointId: string; integrity: string; damaged: unknown[] }) => [p.restorePointId, p.integrity, p.damaged])).toEqual([
      [fullId, 'corrupt', [range]],
      [incId, 'corrupt', [range]],
    ]);
    // verifying the incremental finds the same block through it; corrupt stays corrupt, the damage is not recorded twice
    const throughInc = await verify(incId);
    expect(throughInc.body.content.mismatches.map((m: { restorePointId: string; offset: number }) => [m.restorePointId, m.offset])).toEqual([[fullId, blockOffset]]);
    expect((await points('vm1')).map((p: { damaged: unknown[] }) => p.damaged.length)).toEqual([1, 1]);
    const corrupted = (await lab.api('GET', `/api/v1/audit/streams/chain-vm1-${lab.repositoryId}`)).body.events.filter((e: { type: string }) => e.type === 'RestorePointCorrupted');
    expect(corrupted.map((e: { data: unknown }) => e.data)).toEqual([{ restorePointId: fullId, diskId: 'disk0', offset: blockOffset, length: 65536, expected: mismatch.expected, actual: mismatch.actual, readsThrough: [incId] }]);

    const untouched = (await points('vm2')).at(-1).restorePointId;
    const clean = await verify(untouched);
    expect(clean.body).toMatchObject({ integrity: 'verified', content: { ok: true, mismatches: [] } });

    // a file restored from the incremental carries the corrupt state, in its answer and in its download event
    // (disk1: the flipped byte sits in disk0's ext4 superblock, which then no longer mounts)
    const mount = await lab.api('POST', '/api/v1/restore/mounts', { restorePointId: incId, diskId: 'disk1' });
    expect(mount.status).toBe(201);
    expect(mount.body).toMatchObject({ integrity: 'corrupt', damaged: [], integrityProblems: expect.arrayContaining([`disk disk0 of the restore point has 1 damaged block (in ${fullId})`]) });
    const volume = mount.body.volumes[0].id;
    const download = await fetch(`http://127.0.0.1:${lab.apiPort}/api/v1/restore/mounts/${mount.body.mountId}/file?volume=${volume}&path=/etc/hostname`, {
      headers: { Authorization: `Bearer ${LAB_TOKEN}` },
    });
    expect([download.status, download.status === 200 ? '' : await download.text()]).toEqual([200, '']);
    expect(download.headers.get('x-sendense-integrity')).toBe('corrupt');
    expect(await download.text()).toBe('vm1-disk1\n');
    // the download is recorded once the response has ended
    const downloaded = async () => ((await lab.api('GET', `/api/v1/audit/streams/restore-mount-${mount.body.mountId}`)).body.events as { type: string; data: unknown }[]).find((e) => e.type === 'RestoreFileDownloaded');
    await lab.until(async () => (await downloaded()) !== undefined, 10_000, 'the download to be recorded');
    expect((await downloaded())!.data).toMatchObject({ path: '/etc/hostname', integrity: 'corrupt', complete: true });
    expect((await lab.api('DELETE', `/api/v1/restore/mounts/${mount.body.mountId}`)).status).toBe(200);

    // the next backup does not build on the corrupt point: a full, and the chain recorded broken there, naming it
    const next = await lab.waitForJob(await lab.backup('auto', 'vm1'));
    expect(next).toMatchObject({ status: 'completed', type: 'full', typeReason: expect.stringContaining(`restore point ${incId} is corrupt`) });
    const chainEvents = (await lab.api('GET', `/api/v1/audit/streams/chain-vm1-${lab.repositoryId}`)).body.events as { type: string; data: { restorePointId: string; reason: string }; metadata: { correlationId: string } }[];
    // the verifies recorded the chain broken at each damaged point; the backup records why it did not build on the newest
    const broken = chainEvents.filter((e) => e.type === 'ChainBroken' && e.data.reason.startsWith('restore point'));
    expect(broken.map((e) => e.data)).toEqual([{ restorePointId: incId, reason: expect.stringContaining(`restore point ${incId} is corrupt (1 damaged block(s) in ${fullId}`) }]);
    const nextStory = (await lab.api('GET', `/api/v1/audit/streams/backup-job-${next.jobId}`)).body.events;
    expect(broken[0].metadata.correlationId).toBe(nextStory[0].metadata.correlationId);
    expect((await points('vm1')).map((p: { restorePointId: string; type: string; integrity: string }) => [p.restorePointId, p.type, p.integrity])).toEqual([
      [fullId, 'full', 'corrupt'],
      [incId, 'incremental', 'corrupt'],
      [next.restorePointId, 'full', 'unverified'],
    ]);
    expect((await verify(next.restorePointId)).body).toMatchObject({ integrity: 'verified', content: { ok: true, mismatches: [] } });
  }, 300_000);
});
