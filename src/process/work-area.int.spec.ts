import { promises as fs } from 'node:fs';
import { join } from 'node:path';
import { buildChain, makeTempDir, MiB, removeTempDir } from '../../test/fixtures/qcow2/chain-builder';
import { processesMentioning } from '../../test/support/processes';
import { buildSocketExportArgs } from '../qemu/qemu-nbd-args';
import { launchQemuNbd } from '../qemu/qemu-nbd-launcher';
import { terminateProcess } from './child-process';
import { clearWorkArea, makeWorkDir } from './work-area';

describe('a work area after a crash of the hub', () => {
  let dir: string;
  beforeAll(async () => (dir = await makeTempDir('work-area')));
  afterAll(async () => removeTempDir(dir));

  it('stops the qemu-nbd an interrupted job left and removes its half-built files, touching nothing outside', async () => {
    const { files } = await buildChain(dir, 8 * MiB, [{ name: 'full', writes: [{ pattern: 0x11, offset: 0, length: MiB }] }]);
    const area = join(dir, 'area');
    const left = await makeWorkDir(area);
    const socket = join(left, 'nbd.sock');
    const pidFile = join(left, 'qemu-nbd.pid');
    const server = await launchQemuNbd({ args: buildSocketExportArgs({ file: files[0], format: 'qcow2', socket, exportName: 'image', shared: 1 }, pidFile), pidFile, listen: { socket }, logFile: join(left, 'qemu-nbd.log'), detached: false }, { readyTimeoutMs: 10_000 });
    const building = await makeWorkDir(area);
    await fs.writeFile(join(building, 'image.qcow2'), 'half');
    const outside = join(dir, 'keep.txt');
    await fs.writeFile(outside, 'keep');
    const [qemuNbd] = processesMentioning(left);

    const cleared = await clearWorkArea(area);
    expect(cleared.processes).toEqual([qemuNbd.pid]);
    expect(cleared.entries.sort()).toEqual([left, building].map((d) => d.slice(area.length + 1)).sort());
    await terminateProcess(server, 5_000, 'qemu-nbd');
    expect(processesMentioning(area)).toEqual([]);
    expect(await fs.readdir(area)).toEqual([]);
    expect(await fs.readFile(outside, 'utf8')).toBe('keep');
    expect(await clearWorkArea(join(dir, 'never-made'))).toEqual({ processes: [], entries: [] });
  });
});
