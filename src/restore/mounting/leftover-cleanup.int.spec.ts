import { spawn } from 'node:child_process';
import { promises as fs } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { hostLeftovers, NOTHING_LEFT } from '../../../test/fixtures/restore/host-leftovers';
import { buildRestoreFixtures, removeRestoreFixtures, RestoreFixtures } from '../../../test/fixtures/restore/restore-images';
import { sha256File } from '../../../test/fixtures/restore/source-tree';
import { processesMentioning } from '../../../test/support/processes';
import { runProcess } from '../../process/run-process';
import { RestorePointMounter } from './restore-point-mounter';

async function waitUntil(predicate: () => boolean | Promise<boolean>, timeoutMs = 5_000): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  while (!(await predicate())) {
    if (Date.now() > deadline) throw new Error('condition not met in time');
    await new Promise((resolve) => setTimeout(resolve, 20));
  }
}

describe('cleanupLeftovers after a crash (real mounts)', () => {
  let fixtures: RestoreFixtures;
  let root: string;
  const hashes = new Map<string, string>();
  /**
   * Copies of two points with compressed clusters, which the hub's own view of a chain does not resolve: qemu-nbd
   * serves them, as a process that outlives a crashed hub. A point the hub serves itself goes down with it.
   */
  const viaQemuNbd = { gpt: '', mbr: '' };

  beforeAll(async () => {
    fixtures = await buildRestoreFixtures();
    viaQemuNbd.gpt = join(fixtures.dir, 'gpt-compressed.qcow2');
    viaQemuNbd.mbr = join(fixtures.dir, 'mbr-compressed.qcow2');
    await runProcess('qemu-img', ['convert', '-c', '-f', 'qcow2', '-O', 'qcow2', fixtures.gpt.base, viaQemuNbd.gpt]);
    await runProcess('qemu-img', ['convert', '-c', '-f', 'qcow2', '-O', 'qcow2', fixtures.mbr.incremental, viaQemuNbd.mbr]);
    for (const image of [fixtures.gpt.base, fixtures.mbr.incremental, viaQemuNbd.gpt, viaQemuNbd.mbr]) hashes.set(image, await sha256File(image));
  }, 120_000);

  beforeEach(async () => {
    root = await fs.mkdtemp(join(tmpdir(), 'sendense-restore-crash-'));
  });

  afterEach(async () => {
    await new RestorePointMounter().cleanupLeftovers(root);
    await fs.rm(root, { recursive: true, force: true });
  });

  afterAll(async () => {
    await removeRestoreFixtures(fixtures);
  });

  /** Mounts that exercise every kind of helper: qemu-nbd, nbdfuse, kernel mounts, fusefat and ntfs-3g. */
  async function mountBoth(mounter: RestorePointMounter): Promise<string[]> {
    const gpt = await mounter.mount({ mountId: 'gpt', imageFile: viaQemuNbd.gpt, workDir: join(root, 'gpt') });
    const mbr = await mounter.mount({ mountId: 'mbr', imageFile: viaQemuNbd.mbr, workDir: join(root, 'mbr') });
    return [gpt.workDir, mbr.workDir];
  }

  it('takes everything down after the helpers were SIGKILLed under live mounts', async () => {
    const workDirs = await mountBoth(new RestorePointMounter());
    const helpers = processesMentioning(root);
    const programs = new Set(helpers.map((p) => p.cmdline.split(' ')[0]));
    expect([...programs].sort()).toEqual(['fusefat', 'nbdfuse', 'ntfs-3g', 'qemu-nbd']);
    for (const p of helpers) process.kill(p.pid, 'SIGKILL');
    await waitUntil(() => processesMentioning(root).length === 0);
    // The kernel mounts are still there, now over dead FUSE servers.
    expect((await hostLeftovers(workDirs[0])).mounts.length).toBeGreaterThan(0);

    const report = await new RestorePointMounter().cleanupLeftovers(root);

    expect(report.failures).toEqual([]);
    expect(report.removed.sort()).toEqual(workDirs.sort());
    for (const dir of workDirs) expect(await hostLeftovers(dir)).toEqual(NOTHING_LEFT);
    expect(await fs.readdir(root)).toEqual([]);
  });

  it('takes everything down after the hub died and its helpers kept running', async () => {
    const workDirs = await mountBoth(new RestorePointMounter());
    expect(processesMentioning(root).length).toBeGreaterThanOrEqual(6);

    const report = await new RestorePointMounter().cleanupLeftovers(root);

    expect(report.failures).toEqual([]);
    expect(report.removed.sort()).toEqual(workDirs.sort());
    for (const dir of workDirs) expect(await hostLeftovers(dir)).toEqual(NOTHING_LEFT);
  });

  it('stops a lone qemu-nbd of a mount that died half-way and removes plain leftover dirs', async () => {
    const half = join(root, 'half');
    await fs.mkdir(half);
    const socket = join(half, 'qemu-nbd.sock');
    const child = spawn('qemu-nbd', ['-r', '-f', 'qcow2', '--persistent', '-k', socket, '-x', 'rp', fixtures.gpt.base], { detached: true, stdio: 'ignore' });
    child.unref();
    await waitUntil(async () => fs.access(socket).then(() => true, () => false));
    await fs.mkdir(join(root, 'empty-leftover/volumes/p1'), { recursive: true });
    await fs.writeFile(join(root, 'not-a-dir'), '');

    const report = await new RestorePointMounter().cleanupLeftovers(root);

    expect(report.failures).toEqual([]);
    expect(report.removed.sort()).toEqual([join(root, 'empty-leftover'), half].sort());
    expect(await hostLeftovers(half)).toEqual(NOTHING_LEFT);
    expect(await fs.readdir(root)).toEqual(['not-a-dir']);
  });

  it('finds a helper whose work dir was deleted under it', async () => {
    const gone = join(root, 'gone');
    await fs.mkdir(gone);
    const socket = join(gone, 'qemu-nbd.sock');
    const child = spawn('qemu-nbd', ['-r', '-f', 'qcow2', '--persistent', '-k', socket, '-x', 'rp', fixtures.gpt.base], { detached: true, stdio: 'ignore' });
    child.unref();
    await waitUntil(async () => fs.access(socket).then(() => true, () => false));
    await fs.rm(gone, { recursive: true });

    const report = await new RestorePointMounter().cleanupLeftovers(root);

    expect(report).toEqual({ removed: [gone], warnings: [], failures: [] });
    expect(await hostLeftovers(gone)).toEqual(NOTHING_LEFT);
  });

  it('leaves the live mounts of its own instance alone', async () => {
    const mounter = new RestorePointMounter();
    const live = await mounter.mount({ mountId: 'live', imageFile: fixtures.gpt.base, workDir: join(root, 'live') });
    await fs.mkdir(join(root, 'stale'));

    const report = await mounter.cleanupLeftovers(root);

    expect(report.removed).toEqual([join(root, 'stale')]);
    // the work dir's own mount, nbdfuse's, and the three volumes
    expect((await hostLeftovers(live.workDir)).mounts.length).toBe(5);
    await expect(fs.readFile(join(live.volumes[0].mountPath!, 'Docs/ReadMe.txt'), 'utf8')).resolves.toContain('version 1');
    await mounter.unmount('live');
    expect(await hostLeftovers(live.workDir)).toEqual(NOTHING_LEFT);
  });

  it('does nothing for a restore root that does not exist', async () => {
    await expect(new RestorePointMounter().cleanupLeftovers(join(root, 'missing'))).resolves.toEqual({ removed: [], warnings: [], failures: [] });
  });

  it('never wrote to the images, crash or not', async () => {
    for (const [image, hash] of hashes) expect(await sha256File(image)).toBe(hash);
  });
});
