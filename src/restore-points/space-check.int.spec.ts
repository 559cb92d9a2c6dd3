import { execFile } from 'node:child_process';
import { mkdirSync, mkdtempSync, rmSync } from 'node:fs';
import { writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { promisify } from 'node:util';
import { DomainError } from '../eventing/domain-error';
import { measureCapacity } from '../repositories/adapters/capacity';
import { measure } from '../repositories/qcow2/qemu-img';
import type { RepositoriesService } from '../repositories/registry/repositories.service';
import { SpaceCheck } from './space-check';

const run = promisify(execFile);
const KiB = 1024;
const MiB = 1024 * KiB;

/**
 * The check before a backup writes anything, against the real `qemu-img measure` and a real filesystem that
 * really fills: a 64 MiB ext4 on a loop device. What the check refuses, a write of that image really cannot hold,
 * and what it accepts really fits.
 */
describe('SpaceCheck on a small ext4 that fills', () => {
  let dir = '';
  let mountpoint = '';
  let device = '';
  let check: SpaceCheck;

  beforeAll(async () => {
    // the loop device and the mount need root: a machine without it fails here rather than passing without asserting
    if (process.getuid?.() !== 0) throw new Error('this test mounts a loop device: run it as root');
    dir = mkdtempSync(join(tmpdir(), 'sendense-space-'));
    const image = join(dir, 'fs.img');
    mountpoint = join(dir, 'repo');
    mkdirSync(mountpoint);
    await run('truncate', ['-s', '64M', image]);
    device = (await run('losetup', ['--find', '--show', image])).stdout.trim();
    // no blocks reserved for root: the hub runs as root, and full then means full to it as well
    await run('mkfs.ext4', ['-q', '-m', '0', device]);
    await run('mount', [device, mountpoint]);
    // the repository's capacity as the hub measures it (statfs of its root); the repository itself is not under test
    check = new SpaceCheck({ capacity: async () => measureCapacity(mountpoint) } as unknown as RepositoriesService);
  }, 60_000);

  afterAll(async () => {
    if (mountpoint) await run('umount', [mountpoint]).catch(() => undefined);
    if (device) await run('losetup', ['-d', device]).catch(() => undefined);
    if (dir) rmSync(dir, { recursive: true, force: true });
  });

  /** A qcow2 of that virtual size written whole on the filesystem: what a full backup of such a disk writes at most. */
  async function writeWhole(name: string, virtualSize: number): Promise<{ ok: boolean; error: string }> {
    const file = join(mountpoint, name);
    try {
      await run('qemu-img', ['create', '-q', '-f', 'qcow2', file, String(virtualSize)]);
      await run('qemu-io', ['-f', 'qcow2', '-c', `write -P 0x5a 0 ${virtualSize}`, '-c', 'flush', file]);
      return { ok: true, error: '' };
    } catch (e) {
      // qemu-io says why on stdout
      const { stdout = '', stderr = '' } = e as { stdout?: string; stderr?: string };
      return { ok: false, error: `${stdout}${stderr}`.trim() || (e as Error).message };
    } finally {
      rmSync(file, { force: true });
    }
  }

  it('refuses a backup a full repository cannot hold, with the free space and what qemu-img measure asks', async () => {
    // filled by writing until the kernel says no, a block at a time (larger writes stop with a few hundred KiB left)
    const filled = await run('dd', ['if=/dev/zero', `of=${join(mountpoint, 'fill')}`, 'bs=4k', 'conv=fsync']).then(() => 'dd ended without an error', (e: Error) => e.message);
    expect(filled).toMatch(/No space left on device/);
    await expect(writeFile(join(mountpoint, 'one-more-block'), Buffer.alloc(4 * KiB))).rejects.toMatchObject({ code: 'ENOSPC' });
    rmSync(join(mountpoint, 'one-more-block'), { force: true });
    expect((await measureCapacity(mountpoint)).freeBytes).toBe(0);

    const refused = await check.assertFits('repo-1', [MiB]).catch((e: unknown) => e);
    expect(refused).toBeInstanceOf(DomainError);
    expect(refused).toMatchObject({ kind: 'conflict', message: 'not enough space in repository repo-1: 0.0 GiB free, but the backup may need up to 0.0 GiB (qemu-img measure of 1 disk(s))' });
    expect(await writeWhole('small.qcow2', MiB)).toMatchObject({ ok: false, error: expect.stringMatching(/No space left on device/) });
  }, 60_000);

  it('once emptied, accepts what qemu-img measure says fits and refuses a disk of the free space itself, whose qcow2 tables do not fit beside it; each verdict holds when the image is written', async () => {
    rmSync(join(mountpoint, 'fill'));
    await run('sync', ['-f', mountpoint]);
    const { freeBytes } = await measureCapacity(mountpoint);
    expect(freeBytes).toBeGreaterThan(50 * MiB);

    // the largest whole MiB whose fully allocated qcow2 fits, by the real measure
    const fullyAllocated = async (size: number) => (await measure({ size }, { outputFormat: 'qcow2' })).fullyAllocated;
    let fits = 0;
    for (let step = 64 * MiB; step >= MiB; step /= 2) if ((await fullyAllocated(fits + step)) <= freeBytes) fits += step;
    expect(fits).toBeGreaterThan(40 * MiB);

    expect(await check.assertFits('repo-1', [fits])).toEqual({ requiredBytes: await fullyAllocated(fits), freeBytes });
    // one MiB more, or two disks that are each well below the free space, no longer fit
    await expect(check.assertFits('repo-1', [fits + MiB])).rejects.toThrow(/^not enough space in repository repo-1: /);
    await expect(check.assertFits('repo-1', [fits / 2 + MiB, fits / 2 + MiB])).rejects.toThrow(/qemu-img measure of 2 disk\(s\)\)$/);
    // a disk as large as the free space (in whole clusters) leaves no room for the image's own tables
    const asLargeAsFree = Math.floor(freeBytes / (64 * KiB)) * 64 * KiB;
    await expect(check.assertFits('repo-1', [asLargeAsFree])).rejects.toThrow(/^not enough space in repository repo-1: /);

    expect(await writeWhole('accepted.qcow2', fits)).toEqual({ ok: true, error: '' });
    expect(await writeWhole('refused.qcow2', asLargeAsFree)).toMatchObject({ ok: false, error: expect.stringMatching(/No space left on device/) });
  }, 120_000);
});
