import { existsSync, promises as fs, readFileSync } from 'node:fs';
import execa from 'execa';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { hostLeftovers, NOTHING_LEFT } from '../../../test/fixtures/restore/host-leftovers';
import { buildBtrfsRestorePoint, buildRestoreFixtures, DEVICE_NODE, GPT_VOLUMES, MBR_VOLUMES, removeRestoreFixtures, RestoreFixtures } from '../../../test/fixtures/restore/restore-images';
import { BLOB_SIZE, blobBytes, README_V1, README_V2, sha256, sha256File, TREE, treeManifest } from '../../../test/fixtures/restore/source-tree';
import { processesMentioning } from '../../../test/support/processes';
import { RestoreMountError } from './mount-errors';
import { HelperExitNotice, RestorePointMounter } from './restore-point-mounter';
import type { MountedRestorePoint, RestoreVolume } from './restore-volume';
import { listDirectory } from './directory-listing';
import { resolveInsideVolume } from './safe-path';

/** Names filesystems add by themselves: ext4's lost+found, and fusefat lists the FAT volume label as an empty file. */
const EXT4_EXTRA = ['lost+found'];

function volume(mount: MountedRestorePoint, id: string): RestoreVolume {
  const found = mount.volumes.find((v) => v.id === id);
  if (!found) throw new Error(`no volume ${id} in ${JSON.stringify(mount.volumes)}`);
  return found;
}

async function expectTree(v: RestoreVolume, sourceDir: string, ignore: string[] = []): Promise<void> {
  expect(v.status).toBe('mounted');
  expect(await treeManifest(v.mountPath!, ignore)).toEqual(await treeManifest(sourceDir));
}

describe('RestorePointMounter (real images, real mounts)', () => {
  let fixtures: RestoreFixtures;
  let root: string;
  let mounter: RestorePointMounter;
  const helperExits: HelperExitNotice[] = [];
  const imageHashes = new Map<string, string>();
  let btrfsPoint: string;
  const allImages = () => [fixtures.gpt.base, fixtures.gpt.incremental, fixtures.mbr.base, fixtures.mbr.incremental, fixtures.bare.base, btrfsPoint];
  let seq = 0;
  const request = (imageFile: string) => {
    const mountId = `m${++seq}`;
    return { mountId, imageFile, workDir: join(root, mountId) };
  };

  beforeAll(async () => {
    fixtures = await buildRestoreFixtures();
    btrfsPoint = await buildBtrfsRestorePoint(fixtures);
    root = await fs.mkdtemp(join(tmpdir(), 'sendense-restore-root-'));
    for (const image of allImages()) imageHashes.set(image, await sha256File(image));
    mounter = new RestorePointMounter({ onHelperExit: (notice) => helperExits.push(notice) });
  }, 120_000);

  afterAll(async () => {
    for (const m of mounter?.list() ?? []) await mounter.unmount(m.mountId);
    if (root) await new RestorePointMounter().cleanupLeftovers(root);
    if (root) await fs.rm(root, { recursive: true, force: true });
    await removeRestoreFixtures(fixtures);
  });

  it('mounts a GPT full point: ext4, XFS and vfat read back as built; unknown, LVM and broken volumes are explained', async () => {
    const req = request(fixtures.gpt.base);
    const mount = await mounter.mount(req);
    try {
      expect(mount.partitionTable).toBe('gpt');
      expect(mount.workDir).toBe(req.workDir);
      expect(mount.volumes.map((v) => [v.id, v.fsType, v.status])).toEqual([
        ['p1', 'ext4', 'mounted'],
        ['p2', 'xfs', 'mounted'],
        ['p3', 'vfat', 'mounted'],
        ['p4', null, 'unsupported'],
        ['p5', 'LVM2_member', 'unsupported'],
        ['p6', 'ext4', 'failed'],
      ]);
      expect(volume(mount, GPT_VOLUMES.ext4)).toMatchObject({ index: 1, start: 1024 * 1024, size: 40 * 1024 * 1024, label: 'root-ext4', partitionName: 'root' });
      expect(volume(mount, GPT_VOLUMES.vfat)).toMatchObject({ label: 'ESP', partitionType: 'C12A7328-F81F-11D2-BA4B-00A0C93EC93B' });
      expect(volume(mount, GPT_VOLUMES.ext4).uuid).toMatch(/^[0-9a-f-]{36}$/);
      expect(volume(mount, GPT_VOLUMES.unknown)).toMatchObject({ mountPath: null, reason: 'no filesystem signature was recognised' });
      // What was actually looked at on this host, not a blanket claim: a `dmsetup` run by hand creates the node
      const control = existsSync('/dev/mapper/control');
      const dmLoaded = control && /^\s*\d+\s+device-mapper\s*$/m.test(readFileSync('/proc/misc', 'utf8'));
      expect(volume(mount, GPT_VOLUMES.lvm).reason).toContain(dmLoaded ? 'device-mapper itself is there' : 'device-mapper is not available on this host');
      expect(volume(mount, GPT_VOLUMES.lvm).reason).toContain(`/dev/mapper/control ${control ? 'exists' : 'is missing'}`);
      expect(volume(mount, GPT_VOLUMES.broken)).toMatchObject({ mountPath: null, reason: expect.stringMatching(/^mount failed: .*Structure needs cleaning/) });

      await expectTree(volume(mount, GPT_VOLUMES.ext4), fixtures.trees.v1, EXT4_EXTRA);
      await expectTree(volume(mount, GPT_VOLUMES.xfs), fixtures.trees.v1);
      await expectTree(volume(mount, GPT_VOLUMES.vfat), fixtures.trees.v1NoSymlinks, ['ESP']);

      const blob = await resolveInsideVolume(volume(mount, GPT_VOLUMES.xfs).mountPath!, TREE.blob);
      expect(await sha256File(blob)).toBe(sha256(blobBytes(BLOB_SIZE)));
    } finally {
      await mounter.unmount(req.mountId);
    }
    expect(await hostLeftovers(req.workDir)).toEqual(NOTHING_LEFT);
  });

  it('mounts the incremental on top of it: the changed file reads new, everything else reads through the backing file', async () => {
    expect(fixtures.gpt.overlayBytes).toBeLessThan(2 * 1024 * 1024);
    const req = request(fixtures.gpt.incremental);
    const mount = await mounter.mount(req);
    try {
      await expectTree(volume(mount, GPT_VOLUMES.ext4), fixtures.trees.v2, EXT4_EXTRA);
      await expectTree(volume(mount, GPT_VOLUMES.xfs), fixtures.trees.v1);
      expect(await fs.readFile(join(volume(mount, GPT_VOLUMES.ext4).mountPath!, TREE.readme), 'utf8')).toBe(README_V2);
    } finally {
      await mounter.unmount(req.mountId);
    }
    expect(await hostLeftovers(req.workDir)).toEqual(NOTHING_LEFT);
  });

  it('mounts the full point and its incremental at the same time (same filesystem UUIDs twice)', async () => {
    const [baseReq, incReq] = [request(fixtures.gpt.base), request(fixtures.gpt.incremental)];
    const [base, inc] = [await mounter.mount(baseReq), await mounter.mount(incReq)];
    try {
      for (const id of [GPT_VOLUMES.ext4, GPT_VOLUMES.xfs, GPT_VOLUMES.vfat]) {
        expect(volume(base, id).status).toBe('mounted');
        expect(volume(inc, id).status).toBe('mounted');
      }
      expect(await fs.readFile(join(volume(base, GPT_VOLUMES.ext4).mountPath!, TREE.readme), 'utf8')).toBe(README_V1);
      expect(await fs.readFile(join(volume(inc, GPT_VOLUMES.ext4).mountPath!, TREE.readme), 'utf8')).toBe(README_V2);
      expect(mounter.list().map((m) => m.mountId).sort()).toEqual([baseReq.mountId, incReq.mountId].sort());
    } finally {
      await mounter.unmount(baseReq.mountId);
      await mounter.unmount(incReq.mountId);
    }
    expect(await hostLeftovers(baseReq.workDir)).toEqual(NOTHING_LEFT);
    expect(await hostLeftovers(incReq.workDir)).toEqual(NOTHING_LEFT);
  });

  it('mounts MBR points with logical partitions: vfat, ext4, NTFS (ntfs-3g) and XFS', async () => {
    for (const [image, readme] of [
      [fixtures.mbr.base, fixtures.trees.v1],
      [fixtures.mbr.incremental, fixtures.trees.v2],
    ] as const) {
      const req = request(image);
      const mount = await mounter.mount(req);
      try {
        expect(mount.partitionTable).toBe('dos');
        expect(mount.volumes.map((v) => [v.id, v.index, v.fsType, v.status])).toEqual([
          ['p1', 1, 'vfat', 'mounted'],
          ['p2', 2, 'ext4', 'mounted'],
          ['p5', 5, 'ntfs', 'mounted'],
          ['p6', 6, 'xfs', 'mounted'],
        ]);
        expect(volume(mount, MBR_VOLUMES.ntfs)).toMatchObject({ label: 'mbr-ntfs', partitionType: '7' });
        await expectTree(volume(mount, MBR_VOLUMES.vfat), fixtures.trees.v1NoSymlinks, ['DOSFAT']);
        await expectTree(volume(mount, MBR_VOLUMES.ext4), readme, EXT4_EXTRA);
        await expectTree(volume(mount, MBR_VOLUMES.ntfs), fixtures.trees.v1);
        await expectTree(volume(mount, MBR_VOLUMES.xfs), fixtures.trees.v1);
      } finally {
        await mounter.unmount(req.mountId);
      }
      expect(await hostLeftovers(req.workDir)).toEqual(NOTHING_LEFT);
    }
  });

  it('mounts btrfs with the kernel, read-only and without replaying its log tree', async () => {
    const req = request(btrfsPoint);
    const mount = await mounter.mount(req);
    try {
      expect(mount.volumes.map((v) => [v.id, v.fsType, v.status, v.reason])).toEqual([['p1', 'btrfs', 'mounted', undefined]]);
      expect(mount.volumes[0]).toMatchObject({ label: 'data-btrfs', partitionName: 'data' });
      await expectTree(mount.volumes[0], fixtures.trees.v1);
      const [line] = (await fs.readFile('/proc/mounts', 'utf8')).split('\n').filter((l) => l.includes(`${req.workDir}/volumes/p1 `));
      expect(line.split(' ')[2]).toBe('btrfs');
      expect(line.split(' ')[3].split(',')).toEqual(expect.arrayContaining(['ro', 'nosuid', 'nodev', 'noexec']));
      await expect(fs.writeFile(join(mount.volumes[0].mountPath!, 'new-file'), 'x')).rejects.toMatchObject({ code: 'EROFS' });
      expect(await fs.readFile(await resolveInsideVolume(mount.volumes[0].mountPath!, `/${TREE.readme}`), 'utf8')).toBe(README_V1);
    } finally {
      await mounter.unmount(req.mountId);
    }
    expect(await hostLeftovers(req.workDir)).toEqual(NOTHING_LEFT);
  });

  it('treats a disk without a partition table as one volume, whose device nodes cannot be opened', async () => {
    const req = request(fixtures.bare.base);
    const mount = await mounter.mount(req);
    try {
      expect(mount.partitionTable).toBe('none');
      expect(mount.volumes).toEqual([
        expect.objectContaining({ id: 'disk', index: 0, start: 0, size: 32 * 1024 * 1024, fsType: 'ext4', label: 'bare-ext4', status: 'mounted', mountPath: join(req.workDir, 'volumes/disk') }),
      ]);
      const root = mount.volumes[0].mountPath!;
      await expectTree(mount.volumes[0], fixtures.trees.v1SpecialFiles, EXT4_EXTRA);
      expect((await listDirectory(root, 'Dev')).entries.map((e) => [e.name, e.type])).toEqual([
        ['fifo', 'other'],
        ['zero', 'other'],
      ]);
      // nodev: a device node in an untrusted image must not reach a host device.
      await expect(fs.open(await resolveInsideVolume(root, DEVICE_NODE), 'r')).rejects.toMatchObject({ code: 'EACCES' });
    } finally {
      await mounter.unmount(req.mountId);
    }
  });

  it('mounts read-only all the way down: read-only loop devices, ro,nodev,nosuid mounts, a read-only disk file', async () => {
    const req = request(fixtures.gpt.base);
    const mount = await mounter.mount(req);
    try {
      const mounts = (await fs.readFile('/proc/mounts', 'utf8')).split('\n').filter((l) => l.includes(req.workDir));
      const volumeMounts = mounts.filter((l) => l.includes('/volumes/'));
      expect(volumeMounts).toHaveLength(3);
      for (const line of volumeMounts) expect(line.split(' ')[3].split(',')).toEqual(expect.arrayContaining(['ro', 'nosuid', 'nodev']));
      const { stdout } = await execa('losetup', ['--list', '--json', '--output', 'NAME,BACK-FILE,RO']);
      const loops = (JSON.parse(stdout || '{"loopdevices":[]}').loopdevices as Array<{ 'back-file': string; ro: boolean }>).filter((d) => d['back-file'].startsWith(req.workDir));
      expect(loops.length).toBe(3);
      expect(loops.every((d) => d.ro)).toBe(true);
      await expect(fs.writeFile(join(volume(mount, GPT_VOLUMES.ext4).mountPath!, 'new-file'), 'x')).rejects.toMatchObject({ code: 'EROFS' });
      await expect(fs.open(join(req.workDir, 'nbd/disk'), 'r+')).rejects.toThrow();
    } finally {
      await mounter.unmount(req.mountId);
    }
  });

  it('unmount is idempotent', async () => {
    const req = request(fixtures.bare.base);
    await mounter.mount(req);
    expect(await mounter.unmount(req.mountId)).toEqual({ mountId: req.mountId, wasMounted: true, warnings: [] });
    expect(await mounter.unmount(req.mountId)).toEqual({ mountId: req.mountId, wasMounted: false, warnings: [] });
    expect(await mounter.unmount('never-mounted')).toEqual({ mountId: 'never-mounted', wasMounted: false, warnings: [] });
    expect(await hostLeftovers(req.workDir)).toEqual(NOTHING_LEFT);
  });

  it('a mount namespace made while the point is mounted (libvirt makes one for each qemu it starts) keeps nothing of it once unmounted', async () => {
    const req = request(fixtures.gpt.base);
    await mounter.mount(req);
    const loops = await loopDevicesOf(req.workDir);
    expect(loops).toHaveLength(3);
    // as libvirt's qemu namespaces are: a copy of every mount, each a slave of ours
    const other = execa('unshare', ['--mount', '--propagation', 'slave', 'sleep', '600']);
    other.catch(() => undefined);
    try {
      await waitForAsync(async () => (await fs.readFile(`/proc/${other.pid}/comm`, 'utf8').catch(() => '')).trim() === 'sleep');
      const inOther = await fs.readFile(`/proc/${other.pid}/mounts`, 'utf8');
      expect(inOther).toContain(`${req.workDir}/volumes/`);
      expect(await mounter.unmount(req.mountId)).toEqual({ mountId: req.mountId, wasMounted: true, warnings: [] });
      expect(await hostLeftovers(req.workDir)).toEqual(NOTHING_LEFT);
      expect(await stillAttached(loops)).toEqual([]);
      expect(await fs.readFile(`/proc/${other.pid}/mounts`, 'utf8')).not.toContain(req.workDir);
    } finally {
      other.kill('SIGKILL');
    }
  });

  it('unmounts a volume that is in use lazily: the reader gets errors, the loop devices go once it closes', async () => {
    const req = request(fixtures.gpt.base);
    const mount = await mounter.mount(req);
    const ext4Open = await fs.open(join(volume(mount, GPT_VOLUMES.ext4).mountPath!, TREE.blob), 'r');
    const vfatOpen = await fs.open(join(volume(mount, GPT_VOLUMES.vfat).mountPath!, TREE.blob), 'r');
    const loops = await loopDevicesOf(req.workDir);
    expect(loops).toHaveLength(3);
    try {
      const report = await mounter.unmount(req.mountId);
      expect(report.wasMounted).toBe(true);
      expect(report.warnings.join('\n')).toMatch(/volumes\/p1 was busy and was unmounted lazily/);
      expect(await hostLeftovers(req.workDir)).toMatchObject({ mounts: [], processes: [], dirExists: false });
      await expect(ext4Open.read(Buffer.alloc(4096), 0, 4096, 1024 * 1024)).rejects.toThrow();
    } finally {
      await ext4Open.close().catch(() => undefined);
      await vfatOpen.close().catch(() => undefined);
    }
    // losetup -d on a busy device only marks it autoclear; the kernel frees it with the last reference.
    await waitForAsync(async () => (await stillAttached(loops)).length === 0);
  });

  it('refuses bad requests without leaving anything behind', async () => {
    const missing = request(join(fixtures.dir, 'no-such.qcow2'));
    await expect(mounter.mount(missing)).rejects.toMatchObject({ code: 'IMAGE_NOT_FOUND' });
    expect(await hostLeftovers(missing.workDir)).toEqual(NOTHING_LEFT);

    const req = request(fixtures.bare.base);
    await mounter.mount(req);
    try {
      await expect(mounter.mount({ ...req, workDir: join(root, 'elsewhere') })).rejects.toMatchObject({ code: 'MOUNT_EXISTS' });
      await expect(mounter.mount({ ...request(fixtures.bare.base), workDir: req.workDir })).rejects.toMatchObject({ code: 'WORKDIR_IN_USE' });
    } finally {
      await mounter.unmount(req.mountId);
    }
    const occupied = request(fixtures.bare.base);
    await fs.mkdir(occupied.workDir);
    await fs.writeFile(join(occupied.workDir, 'something'), '');
    const error = await mounter.mount(occupied).catch((e: unknown) => e);
    expect(error).toBeInstanceOf(RestoreMountError);
    expect((error as RestoreMountError).code).toBe('WORKDIR_IN_USE');
    await expect(mounter.mount({ ...request(fixtures.bare.base), workDir: 'relative/dir' })).rejects.toMatchObject({ code: 'INVALID_REQUEST' });
  });

  it('lets only one of two concurrent mounts have a work dir', async () => {
    const shared = join(root, 'shared');
    const [a, b] = [request(fixtures.bare.base), request(fixtures.bare.base)];
    const results = await Promise.allSettled([mounter.mount({ ...a, workDir: shared }), mounter.mount({ ...b, workDir: shared })]);
    const won = results.filter((r) => r.status === 'fulfilled') as PromiseFulfilledResult<MountedRestorePoint>[];
    const lost = results.filter((r) => r.status === 'rejected') as PromiseRejectedResult[];
    expect(won).toHaveLength(1);
    expect(lost.map((r) => (r.reason as RestoreMountError).code)).toEqual(['WORKDIR_IN_USE']);
    expect(won[0].value.volumes[0].status).toBe('mounted');
    await mounter.unmount(won[0].value.mountId);
    expect(await hostLeftovers(shared)).toEqual(NOTHING_LEFT);
  });

  it('fails cleanly when the file is not a qcow2 image', async () => {
    const req = request(fixtures.gpt.baseRaw);
    await expect(mounter.mount(req)).rejects.toThrow(/qemu-nbd exited with code 1 before it was ready.*(qcow2|Image is not in qcow2 format)/);
    expect(await hostLeftovers(req.workDir)).toEqual(NOTHING_LEFT);
  });

  it('reports a helper that dies while mounted, and still unmounts cleanly: qemu-nbd, serving a layout the hub does not resolve', async () => {
    // compressed clusters: qemu-nbd serves this point, not the hub's own view of the chain
    const compressed = join(fixtures.dir, 'bare-compressed.qcow2');
    await execa('qemu-img', ['convert', '-c', '-f', 'qcow2', '-O', 'qcow2', fixtures.bare.base, compressed]);
    const req = request(compressed);
    await mounter.mount(req);
    const [qemuNbd] = processesMentioning(`${req.workDir}/qemu-nbd.sock`).filter((p) => p.cmdline.startsWith('qemu-nbd'));
    process.kill(qemuNbd.pid, 'SIGKILL');
    await waitFor(() => helperExits.some((n) => n.mountId === req.mountId));
    expect(helperExits.find((n) => n.mountId === req.mountId)).toMatchObject({ program: 'qemu-nbd', status: { code: null, signal: 'SIGKILL' } });
    const report = await mounter.unmount(req.mountId);
    expect(report.wasMounted).toBe(true);
    expect(await hostLeftovers(req.workDir)).toEqual(NOTHING_LEFT);
    await fs.rm(compressed);
  });

  it('serves a point Sendense wrote from the hub itself (no qemu-nbd), and reports nbdfuse dying while mounted', async () => {
    const req = request(fixtures.bare.base);
    await mounter.mount(req);
    expect(processesMentioning(`${req.workDir}/qemu-nbd.sock`).filter((p) => p.cmdline.startsWith('qemu-nbd'))).toEqual([]);
    const [nbdfuse] = processesMentioning(`${req.workDir}/qemu-nbd.sock`).filter((p) => p.cmdline.startsWith('nbdfuse'));
    process.kill(nbdfuse.pid, 'SIGKILL');
    await waitFor(() => helperExits.some((n) => n.mountId === req.mountId));
    expect(helperExits.find((n) => n.mountId === req.mountId)).toMatchObject({ program: 'nbdfuse', status: { code: null, signal: 'SIGKILL' } });
    const report = await mounter.unmount(req.mountId);
    expect(report.wasMounted).toBe(true);
    expect(await hostLeftovers(req.workDir)).toEqual(NOTHING_LEFT);
  });

  it('never wrote to any image', async () => {
    for (const image of allImages()) expect(await sha256File(image)).toBe(imageHashes.get(image));
  });
});

interface LoopInfo {
  name: string;
  'back-file': string;
  offset: number;
}

async function listLoops(): Promise<LoopInfo[]> {
  const { stdout } = await execa('losetup', ['--list', '--json', '--output', 'NAME,BACK-FILE,OFFSET']);
  return stdout.trim() ? (JSON.parse(stdout).loopdevices as LoopInfo[]) : [];
}

async function loopDevicesOf(workDir: string): Promise<LoopInfo[]> {
  return (await listLoops()).filter((d) => d['back-file'].startsWith(`${workDir}/`));
}

/** Once the FUSE mount is gone the kernel shows the backing file as just "/disk", so match on name and offset. */
async function stillAttached(loops: LoopInfo[]): Promise<LoopInfo[]> {
  const now = await listLoops();
  return loops.filter((l) => now.some((d) => d.name === l.name && Number(d.offset) === Number(l.offset) && d['back-file'].endsWith('/disk')));
}

async function waitForAsync(predicate: () => Promise<boolean>, timeoutMs = 10_000): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  while (!(await predicate())) {
    if (Date.now() > deadline) throw new Error('condition not met in time');
    await new Promise((resolve) => setTimeout(resolve, 50));
  }
}

async function waitFor(predicate: () => boolean, timeoutMs = 5_000): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  while (!predicate()) {
    if (Date.now() > deadline) throw new Error('condition not met in time');
    await new Promise((resolve) => setTimeout(resolve, 20));
  }
}
