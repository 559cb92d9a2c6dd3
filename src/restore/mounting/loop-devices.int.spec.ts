import { spawn } from 'node:child_process';
import { promises as fs, readdirSync, readlinkSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { attachReadOnlyLoop, detachLoop, loopDevicesBackedWithin, loopsLeft } from './loop-devices';

const MiB = 1024 * 1024;

/** Real loop devices (root). */
describe('loop devices', () => {
  let dir: string;
  beforeAll(async () => (dir = await fs.mkdtemp(join(tmpdir(), 'sendense-loops-'))));
  afterAll(async () => {
    for (const device of await loopDevicesBackedWithin(dir)) await detachLoop(device.name);
    await fs.rm(dir, { recursive: true, force: true });
  });

  it('a detached device keeps its file until its last user is gone, and loopsLeft waits for that', async () => {
    const file = join(dir, 'disk.img');
    await fs.writeFile(file, Buffer.alloc(8 * MiB));
    const device = await attachReadOnlyLoop(file, 0, 8 * MiB);
    // a user of the device, as a filesystem being unmounted or the kernel's own clearing is for a moment
    const holder = spawn('sh', ['-c', `exec 3<${device}; sleep 0.7`], { stdio: 'ignore' });
    const exited = new Promise((resolve) => holder.once('exit', resolve));
    const holds = () => {
      try {
        return readdirSync(`/proc/${holder.pid}/fd`).some((fd) => readlinkSync(`/proc/${holder.pid}/fd/${fd}`) === device);
      } catch {
        return false;
      }
    };
    while (!holds()) await new Promise((resolve) => setTimeout(resolve, 5));

    await detachLoop(device);
    // losetup -d has returned: the device still reads from the file
    expect(await loopsLeft(dir, 0)).toBe(false);
    expect((await loopDevicesBackedWithin(dir)).map((d) => d.name)).toEqual([device]);
    const started = Date.now();
    expect(await loopsLeft(dir, 5_000)).toBe(true);
    expect(Date.now() - started).toBeGreaterThan(100);
    await exited;
    expect(await loopDevicesBackedWithin(dir)).toEqual([]);
  });

  it('gives up after its timeout while a device still holds its file', async () => {
    const file = join(dir, 'kept.img');
    await fs.writeFile(file, Buffer.alloc(MiB));
    const device = await attachReadOnlyLoop(file, 0, MiB);
    const started = Date.now();
    expect(await loopsLeft(dir, 150)).toBe(false);
    expect(Date.now() - started).toBeGreaterThanOrEqual(150);
    await detachLoop(device);
    expect(await loopsLeft(dir, 5_000)).toBe(true);
  });
});
