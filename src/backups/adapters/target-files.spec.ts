import { spawnSync } from 'node:child_process';
import { promises as fs } from 'node:fs';
import { dirname, join } from 'node:path';
import { makeTempDir, removeTempDir } from '../../../test/fixtures/qcow2/chain-builder';
import { processesWithArgument, readCmdline } from '../../process/proc';
import { TargetFiles } from './target-files';

describe('TargetFiles.remove', () => {
  let root: string;
  beforeEach(async () => {
    root = await makeTempDir('target-files');
  });
  afterEach(async () => {
    await removeTempDir(root);
  });

  it("removes a failed point's images, digests, configuration, manifest and its dead writers' temp files, and nothing of other points or live writers", async () => {
    const dead = spawnSync(process.execPath, ['-e', '0']).pid!;
    const ownTemps = [`vm1/manifests/.rp-1.disk0.digests.tmp-${dead}-0a1b2c3d`, `vm1/manifests/.rp-1.json.tmp-${dead}-0a1b2c3e`, `vm1/manifests/.rp-1.config.json.tmp-${dead}-0a1b2c3f`];
    const kept = [
      'vm1/disk0/rp-0.qcow2',
      'vm1/manifests/rp-0.json',
      'vm1/manifests/rp-0.disk0.digests',
      'vm1/manifests/rp-0.config.json',
      `vm1/manifests/.rp-0.disk0.digests.tmp-${dead}-0a1b2c3d`,
      `vm1/manifests/.rp-10.disk0.digests.tmp-${dead}-0a1b2c3d`,
      `vm1/manifests/.rp-1.disk0.digests.tmp-${process.pid}-0a1b2c3d`,
    ];
    const written = ['vm1/disk0/rp-1.qcow2', 'vm1/disk1/rp-1.qcow2', 'vm1/manifests/rp-1.json', 'vm1/manifests/rp-1.disk0.digests', 'vm1/manifests/rp-1.config.json'];
    for (const file of [...kept, ...written, ...ownTemps]) {
      await fs.mkdir(dirname(join(root, file)), { recursive: true });
      await fs.writeFile(join(root, file), 'x');
    }

    const removed = await new TargetFiles().remove(root, 'vm1', 'rp-1', ['vm1/disk0/rp-1.qcow2', 'vm1/disk1/rp-1.qcow2']);

    expect(removed.sort()).toEqual([...written, ...ownTemps].sort());
    const left = async (dir: string) => (await fs.readdir(join(root, dir))).map((name) => `${dir}/${name}`);
    expect([...(await left('vm1/disk0')), ...(await left('vm1/disk1')), ...(await left('vm1/manifests'))].sort()).toEqual(kept.sort());
  });
});

describe('TargetFiles: nothing outside the repository, nothing already there', () => {
  let base: string;
  let root: string;
  let canary: string;
  beforeEach(async () => {
    base = await makeTempDir('target-files-root');
    root = join(base, 'repo');
    await fs.mkdir(root);
    // what a hostile id aims at: an image of someone else's, next to the repository
    canary = join(base, 'x', 'disk1', 'rp-1.qcow2');
    await fs.mkdir(dirname(canary), { recursive: true });
    await fs.writeFile(canary, 'not yours');
  });
  afterEach(async () => {
    await removeTempDir(base);
  });

  it('create refuses a target whose path leaves the repository, and leaves the file there as it was', async () => {
    await expect(new TargetFiles().create(root, { diskId: 'disk1', file: 'vm-b/../../x/disk1/rp-1.qcow2', parentFile: null, virtualSize: 1024 * 1024 })).rejects.toThrow(/is not inside the repository/);
    expect(await fs.readFile(canary, 'utf8')).toBe('not yours');
  });

  it('create refuses a file already there instead of deleting it, and creates a fresh image where there is none', async () => {
    const file = 'vm1/disk1/rp-2.qcow2';
    await fs.mkdir(join(root, 'vm1', 'disk1'), { recursive: true });
    await fs.writeFile(join(root, file), 'earlier');
    await expect(new TargetFiles().create(root, { diskId: 'disk1', file, parentFile: null, virtualSize: 1024 * 1024 })).rejects.toThrow(`refusing to overwrite existing image ${join(root, file)}`);
    expect(await fs.readFile(join(root, file), 'utf8')).toBe('earlier');

    await new TargetFiles().create(root, { diskId: 'disk1', file: 'vm1/disk1/rp-3.qcow2', parentFile: null, virtualSize: 1024 * 1024 });
    const info = JSON.parse(spawnSync('qemu-img', ['info', '--output=json', join(root, 'vm1/disk1/rp-3.qcow2')], { encoding: 'utf8' }).stdout);
    expect({ format: info.format, size: info['virtual-size'] }).toEqual({ format: 'qcow2', size: 1024 * 1024 });
  });

  it('of two creates of one name at once, one makes the image and the other is refused without touching it', async () => {
    const file = 'vm1/disk1/rp-5.qcow2';
    const both = await Promise.allSettled([1, 2].map(() => new TargetFiles().create(root, { diskId: 'disk1', file, parentFile: null, virtualSize: 1024 * 1024 })));
    expect(both.map((r) => r.status).sort()).toEqual(['fulfilled', 'rejected']);
    expect(String((both.find((r) => r.status === 'rejected') as PromiseRejectedResult).reason)).toContain(`refusing to overwrite existing image ${join(root, file)}`);
    const info = JSON.parse(spawnSync('qemu-img', ['info', '--output=json', join(root, file)], { encoding: 'utf8' }).stdout);
    expect({ format: info.format, size: info['virtual-size'] }).toEqual({ format: 'qcow2', size: 1024 * 1024 });
  });

  it('a create that fails leaves no file behind', async () => {
    const file = 'vm1/disk1/rp-6.qcow2';
    await expect(new TargetFiles().create(root, { diskId: 'disk1', file, parentFile: null, virtualSize: 1024 * 1024, synthesizedFrom: 'vm1/disk1/no-such-point.qcow2' })).rejects.toThrow(/no-such-point/);
    await expect(fs.lstat(join(root, file))).rejects.toMatchObject({ code: 'ENOENT' });
  });

  it('a synthetic full stopped by its signal (a cancel, the hub stopping) kills its copy and leaves no file behind', async () => {
    // a point of 512 MiB of data: its copy takes long enough to be stopped midway
    const source = 'vm1/disk1/rp-7.qcow2';
    await fs.mkdir(join(root, 'vm1', 'disk1'), { recursive: true });
    expect(spawnSync('qemu-img', ['create', '-q', '-f', 'qcow2', join(root, source), '512M']).status).toBe(0);
    expect(spawnSync('qemu-io', ['-f', 'qcow2', '-c', 'write -P 0x5a 0 512M', join(root, source)]).status).toBe(0);
    const file = 'vm1/disk1/rp-8.qcow2';
    const stop = new AbortController();
    const copying = new TargetFiles().create(root, { diskId: 'disk1', file, parentFile: null, virtualSize: 512 * 1024 * 1024, synthesizedFrom: source }, stop.signal);
    // looked for in /proc from this process: a pgrep spawned every few ms on a loaded machine could miss the whole copy
    const running = () => processesWithArgument((word) => word.includes(join(root, file))).some(({ pid }) => /qemu-img\0.*convert/.test((readCmdline(pid) ?? []).join('\0')));
    for (let i = 0; i < 2000 && !running(); i++) await new Promise((r) => setTimeout(r, 1));
    expect(running()).toBe(true);
    stop.abort();
    await expect(copying).rejects.toThrow();
    expect(running()).toBe(false);
    await expect(fs.lstat(join(root, file))).rejects.toMatchObject({ code: 'ENOENT' });
  });

  it('create refuses a symlink planted at the name, and does not follow it', async () => {
    await fs.mkdir(join(root, 'vm1', 'disk1'), { recursive: true });
    await fs.symlink(canary, join(root, 'vm1/disk1/rp-4.qcow2'));
    await expect(new TargetFiles().create(root, { diskId: 'disk1', file: 'vm1/disk1/rp-4.qcow2', parentFile: null, virtualSize: 1024 * 1024 })).rejects.toThrow(/refusing to overwrite existing image/);
    expect(await fs.readFile(canary, 'utf8')).toBe('not yours');
  });

  it('remove with a vm id or file leading out of the repository removes nothing, inside or out', async () => {
    const own = 'vm1/disk1/rp-1.qcow2';
    await fs.mkdir(join(root, 'vm1', 'disk1'), { recursive: true });
    await fs.writeFile(join(root, own), 'x');
    await expect(new TargetFiles().remove(root, 'vm1', 'rp-1', [own, '../x/disk1/rp-1.qcow2'])).rejects.toThrow(/is not inside the repository/);
    await expect(new TargetFiles().remove(root, '../x', 'rp-1', ['../x/disk1/rp-1.qcow2'])).rejects.toThrow(/is not inside the repository/);
    expect(await fs.readFile(canary, 'utf8')).toBe('not yours');
    expect(await fs.readFile(join(root, own), 'utf8')).toBe('x');
  });
});
