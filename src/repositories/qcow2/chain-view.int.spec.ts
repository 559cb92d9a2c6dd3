import { randomBytes } from 'node:crypto';
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { basename, join } from 'node:path';
import { runProcess } from '../../process/run-process';
import { Qcow2ChainView } from './chain-view';
import { retryUnclockedPbkdf } from '../../../test/support/qemu-pbkdf';

const KiB = 1024;
const MiB = 1024 * KiB;

/** Every view is compared, byte for byte, with what qemu reads of the same real chain (qemu-img convert to raw). */
describe('Qcow2ChainView against qemu', () => {
  let dir: string;
  const path = (name: string) => join(dir, name);
  const qemuImg = (...args: string[]) => runProcess('qemu-img', args);
  const qemuIo = (file: string, ...commands: string[]) => runProcess('qemu-io', ['-f', 'qcow2', ...commands.flatMap((c) => ['-c', c]), path(file)]);
  const overlay = (name: string, backing: string, size?: string) => qemuImg('create', '-q', '-f', 'qcow2', '-F', 'qcow2', '-b', backing, path(name), ...(size ? [size] : []));

  beforeAll(() => {
    dir = mkdtempSync(join(tmpdir(), 'sendense-chain-view-'));
  });
  afterAll(() => process.env.KEEP || rmSync(dir, { recursive: true, force: true }));

  async function expectSameAsQemu(name: string): Promise<Qcow2ChainView> {
    const raw = path(`${name}.raw`);
    await qemuImg('convert', '-f', 'qcow2', '-O', 'raw', path(name), raw);
    const expected = readFileSync(raw);
    const view = await Qcow2ChainView.open(path(name));
    expect(view).not.toBeNull();
    expect(view!.size).toBe(expected.length);
    // whole, and in odd pieces that start and end inside clusters and runs
    expect((await view!.read(0, view!.size)).equals(expected)).toBe(true);
    const piece = 37 * KiB + 512;
    for (let offset = 3 * KiB; offset < expected.length; offset += 5 * piece + 4096) {
      const length = Math.min(piece, expected.length - offset);
      const got = await view!.read(offset, length);
      if (!got.equals(expected.subarray(offset, offset + length))) throw new Error(`${name}: ${length} bytes at ${offset} differ from qemu's`);
    }
    rmSync(raw);
    return view!;
  }

  it('reads a chain of incrementals with data, zeroed, discarded and partly written clusters as qemu does', async () => {
    writeFileSync(path('data.bin'), randomBytes(3 * MiB));
    await qemuImg('create', '-q', '-f', 'qcow2', path('base.qcow2'), '16M');
    await qemuIo('base.qcow2', 'write -P 0x11 0 2M', 'write -P 0x22 6M 1M', 'write -z 4M 64K');
    await overlay('p1.qcow2', 'base.qcow2');
    await qemuIo('p1.qcow2', 'write -P 0x33 64K 64K', 'write -z 128K 128K', 'discard 6M 128K', 'write -P 0x44 1000K 4K');
    await overlay('p2.qcow2', 'p1.qcow2');
    await qemuIo('p2.qcow2', 'write -P 0x55 96K 8K', 'write -P 0x66 15M 1M', 'write -z 6M 64K');
    const view = await expectSameAsQemu('p2.qcow2');
    expect(view.files).toEqual([path('p2.qcow2'), path('p1.qcow2'), path('base.qcow2')]);
    await view.close();
  });

  it('reads a long chain of small incrementals as qemu does, in a handful of runs', async () => {
    await qemuImg('create', '-q', '-f', 'qcow2', path('long0.qcow2'), '8M');
    await qemuIo('long0.qcow2', 'write -P 0x01 0 4M');
    for (let i = 1; i <= 40; i++) {
      await overlay(`long${i}.qcow2`, `long${i - 1}.qcow2`);
      await qemuIo(`long${i}.qcow2`, `write -P ${i + 1} ${((i * 7) % 120) * 64 * KiB} 64K`);
    }
    const view = await expectSameAsQemu('long40.qcow2');
    expect(view.files).toHaveLength(41);
    // the base's run, broken by each later write once or twice, and the zeros after it
    expect(view.runCount).toBeLessThanOrEqual(2 * 40 + 2);
    await view.close();
  });

  it('reads entries on the edges of the chunks its table scan skips when they are all zeros', async () => {
    // 64 KiB clusters: L2 entries 511 and 512 map 32 MiB - 64 KiB and 32 MiB, the last of one 4 KiB chunk of the
    // table and the first of the next; the top file's first chunk is all zeros, its second starts with an entry
    await qemuImg('create', '-q', '-f', 'qcow2', path('edges0.qcow2'), '64M');
    await qemuIo('edges0.qcow2', 'write -P 0x31 0 1M', 'write -P 0x32 32704K 128K', 'write -P 0x33 65472K 64K');
    await overlay('edges1.qcow2', 'edges0.qcow2');
    await qemuIo('edges1.qcow2', 'write -P 0x34 32M 64K', 'write -P 0x35 65472K 64K');
    await overlay('edges2.qcow2', 'edges1.qcow2');
    await qemuIo('edges2.qcow2', 'write -P 0x36 32704K 64K');
    await (await expectSameAsQemu('edges2.qcow2')).close();
  });

  it('reads zeros beyond the end of a shorter backing file, and only as far as the newest file reaches', async () => {
    await qemuImg('create', '-q', '-f', 'qcow2', path('small.qcow2'), '2M');
    await qemuIo('small.qcow2', 'write -P 0x77 0 2M');
    await overlay('grown.qcow2', 'small.qcow2', '6M');
    await qemuIo('grown.qcow2', 'write -P 0x78 5M 64K');
    await overlay('grown-top.qcow2', 'grown.qcow2');
    await (await expectSameAsQemu('grown-top.qcow2')).close();

    await qemuImg('create', '-q', '-f', 'qcow2', path('large.qcow2'), '8M');
    await qemuIo('large.qcow2', 'write -P 0x79 0 8M');
    await overlay('shrunk.qcow2', 'large.qcow2', '3M');
    await (await expectSameAsQemu('shrunk.qcow2')).close();
  });

  it('answers null for layouts it does not resolve, which the caller then reads through qemu', async () => {
    await qemuImg('create', '-q', '-f', 'qcow2', path('plain.qcow2'), '4M');
    await qemuIo('plain.qcow2', 'write -P 0x12 0 1M');
    await qemuImg('convert', '-c', '-f', 'qcow2', '-O', 'qcow2', path('plain.qcow2'), path('compressed.qcow2'));
    await overlay('over-compressed.qcow2', 'compressed.qcow2');
    await qemuImg('create', '-q', '-f', 'qcow2', '-o', 'extended_l2=on', path('extended.qcow2'), '4M');
    await qemuImg('create', '-q', '-f', 'qcow2', '-o', 'compat=0.10', path('v2.qcow2'), '4M');
    await qemuImg('create', '-q', '-f', 'raw', path('base.raw'), '4M');
    await qemuImg('create', '-q', '-f', 'qcow2', '-F', 'raw', '-b', path('base.raw'), path('over-raw.qcow2'));
    await qemuImg('create', '-q', '-f', 'qcow2', '-o', 'cluster_size=4096', path('small-clusters.qcow2'), '4M');
    await overlay('mixed-clusters.qcow2', 'small-clusters.qcow2');
    writeFileSync(path('secret'), 'a key of some length');
    await retryUnclockedPbkdf(() => qemuImg('create', '-q', '--object', `secret,id=s0,file=${path('secret')}`, '-f', 'qcow2', '-o', 'encrypt.format=luks,encrypt.key-secret=s0', path('encrypted.qcow2'), '4M'));
    for (const name of ['over-compressed', 'extended', 'v2', 'over-raw', 'mixed-clusters', 'encrypted']) {
      expect({ name, view: await Qcow2ChainView.open(path(`${name}.qcow2`)) }).toEqual({ name, view: null });
    }
    // the plain file itself resolves
    await (await expectSameAsQemu('plain.qcow2')).close();
  });

  it('refuses reads outside the image and fails on a missing backing file', async () => {
    const view = (await Qcow2ChainView.open(path('plain.qcow2')))!;
    await expect(view.read(4 * MiB - 512, 1024)).rejects.toThrow(RangeError);
    await expect(view.read(-1, 10)).rejects.toThrow(RangeError);
    await view.close();
    await overlay('orphan.qcow2', 'plain.qcow2');
    rmSync(path('plain.qcow2'));
    await expect(Qcow2ChainView.open(path('orphan.qcow2'))).rejects.toThrow(/ENOENT/);
  });

  it('fails on a backing chain that loops, however its files are named', async () => {
    await qemuImg('create', '-q', '-f', 'qcow2', path('loop-a.qcow2'), '4M');
    await overlay('loop-b.qcow2', 'loop-a.qcow2');
    // loop-a now backs onto loop-b through a name of its own directory
    await qemuImg('rebase', '-u', '-f', 'qcow2', '-F', 'qcow2', '-b', `../${basename(dir)}/loop-b.qcow2`, path('loop-a.qcow2'));
    await expect(Qcow2ChainView.open(path('loop-b.qcow2'))).rejects.toThrow(/loops back/);
  });
});
