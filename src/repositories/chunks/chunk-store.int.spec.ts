import { hash, randomBytes } from 'node:crypto';
import { promises as fs } from 'node:fs';
import { join } from 'node:path';
import execa from 'execa';
import { makeTempDir, removeTempDir } from '../../../test/fixtures/qcow2/chain-builder';
import { ext4Image } from '../../../test/fixtures/restore/filesystem-images';
import { NbdServer } from '../../nbd-protocol/nbd-server';
import { Qcow2ChainView } from '../qcow2/chain-view';
import { CHUNK_SIZE, ChunkFormatError } from './chunk-format';
import { ChunkStore, storeDisk } from './chunk-store';
import type { ChunkLocation } from './indexes';

const MiB = 1024 * 1024;

/**
 * A real ext4 disk (this machine's files and generated text, a size that is no multiple of 64 KiB) as a real qcow2
 * point, read by the hub's own qcow2 reader into a chunk store, served back by the hub's NBD server and compared
 * with the disk by qemu-img: the chunk store's bytes, as the tools that read points today see them.
 */
describe('ChunkStore: a disk stored once, deduplicated, compressed and sealed, served back bit for bit', () => {
  let dir: string;
  let raw: string;
  let qcow2: string;
  const key = randomBytes(32);
  const size = 40 * MiB + 3 * 4096;

  beforeAll(async () => {
    dir = await makeTempDir('chunk-store');
    const tree = join(dir, 'tree');
    await fs.mkdir(join(tree, 'log'), { recursive: true });
    await execa('cp', ['-a', '/usr/share/common-licenses', join(tree, 'licenses')]);
    await fs.writeFile(join(tree, 'log', 'app.log'), Array.from({ length: 60000 }, (_, i) => `2026-11-26T10:${String(i % 60).padStart(2, '0')}:00Z host app[${i % 977}]: request ${i} done\n`).join(''));
    await fs.writeFile(join(tree, 'random.bin'), randomBytes(3 * MiB));
    raw = join(dir, 'disk.raw');
    await ext4Image('chunks')(raw, size, tree);
    qcow2 = join(dir, 'disk.qcow2');
    await execa('qemu-img', ['convert', '-f', 'raw', '-O', 'qcow2', raw, qcow2]);
  }, 60_000);
  afterAll(async () => removeTempDir(dir));

  async function storeQcow2(store: ChunkStore, name: string, file: string): Promise<void> {
    const view = (await Qcow2ChainView.open(file))!;
    try {
      await storeDisk(store, name, view);
    } finally {
      await view.close();
    }
  }

  /** qemu-img's own comparison of the point, read through the hub's NBD server, with `against`. */
  async function compareServed(store: ChunkStore, name: string, against: string): Promise<void> {
    const view = await store.openPoint(name);
    const socket = join(dir, `${name.replace(/\//g, '_')}.sock`);
    const server = await NbdServer.listen(socket, 'point', view);
    try {
      await execa('qemu-img', ['compare', '-f', 'raw', '-F', 'raw', `nbd+unix:///point?socket=${socket}`, against]);
      const info = JSON.parse((await execa('nbdinfo', ['--json', `nbd+unix:///point?socket=${socket}`])).stdout);
      expect(info.exports[0]['export-size']).toBe(size);
    } finally {
      await server.close();
      await view.close();
    }
  }

  it('stores a qcow2 point compressed and sealed, and serves it equal to the disk, from this store and from one opened anew', async () => {
    const store = await ChunkStore.open(join(dir, 'sealed'), { key });
    await storeQcow2(store, 'vm1/rp-1/disk0', qcow2);
    // the filesystem's text and metadata compress; its random file and the zeros do not count against it
    expect(store.stats.storedBytes).toBeLessThan(store.stats.plainBytes * 0.75);
    await compareServed(store, 'vm1/rp-1/disk0', raw);
    const reopened = await ChunkStore.open(join(dir, 'sealed'), { key });
    await compareServed(reopened, 'vm1/rp-1/disk0', raw);
    // nothing of the content is readable without the key: not the chunks, not which digests the store holds
    const packs = await fs.readdir(join(dir, 'sealed', 'packs'));
    const stored = Buffer.concat(await Promise.all(packs.map((p) => fs.readFile(join(dir, 'sealed', 'packs', p)))));
    expect(stored.includes(Buffer.from('request 12345 done'))).toBe(false);
    await expect(ChunkStore.open(join(dir, 'sealed'), { key: randomBytes(32) })).rejects.toThrow(/does not open with this repository's key/);
  });

  it("stores a clone's blocks once: a second disk that differs in 3 blocks adds 3 chunks, and both read back", async () => {
    const store = await ChunkStore.open(join(dir, 'dedup'), { key });
    await storeQcow2(store, 'vm1/rp-1/disk0', qcow2);
    const first = store.stats.chunks;
    const clone = join(dir, 'clone.raw');
    await fs.copyFile(raw, clone);
    const file = await fs.open(clone, 'r+');
    for (const block of [3, 100, 640]) await file.write(randomBytes(4096), 0, 4096, block * CHUNK_SIZE + 512);
    await file.close();
    const cloneQcow2 = join(dir, 'clone.qcow2');
    await execa('qemu-img', ['convert', '-f', 'raw', '-O', 'qcow2', clone, cloneQcow2]);
    await storeQcow2(store, 'vm2/rp-1/disk0', cloneQcow2);
    expect(store.stats.chunks - first).toBe(3);
    await compareServed(store, 'vm2/rp-1/disk0', clone);
    await compareServed(store, 'vm1/rp-1/disk0', raw);
  });

  it('a plain store reads back the same; a flipped byte in a sealed pack fails the read of that block instead of serving it', async () => {
    const plain = await ChunkStore.open(join(dir, 'plain'), { key: null });
    await storeQcow2(plain, 'vm1/rp-1/disk0', qcow2);
    await compareServed(plain, 'vm1/rp-1/disk0', raw);

    const store = await ChunkStore.open(join(dir, 'tamper'), { key });
    await storeQcow2(store, 'vm1/rp-1/disk0', qcow2);
    const index = await store.readPoint('vm1/rp-1/disk0');
    const block = index.blocks.findIndex((b) => b !== null);
    const pack = (await fs.readdir(join(dir, 'tamper', 'packs'))).find((p) => p.endsWith('.pack'))!;
    const handle = await fs.open(join(dir, 'tamper', 'packs', pack), 'r+');
    const byte = Buffer.alloc(1);
    await handle.read(byte, 0, 1, 20);
    byte[0] ^= 0x40;
    await handle.write(byte, 0, 1, 20);
    await handle.close();
    const view = await (await ChunkStore.open(join(dir, 'tamper'), { key })).openPoint('vm1/rp-1/disk0');
    await expect(view.read(block * CHUNK_SIZE, 4096)).rejects.toThrow(ChunkFormatError);
    await view.close();
  });

  it('what a crash leaves (a dead writer\'s temp pack, a pack whose index was never written) is removed or ignored, and points still read', async () => {
    const root = join(dir, 'crash');
    const store = await ChunkStore.open(root, { key });
    await storeQcow2(store, 'vm1/rp-1/disk0', qcow2);
    // a pack written but never indexed (killed between the two), and a temp of a writer that is gone
    const dead = (await execa('sh', ['-c', 'echo $$'])).stdout.trim();
    await fs.writeFile(join(root, 'packs', '00000000000000ff.pack'), randomBytes(1000));
    const temp = join(root, 'packs', `.0000000000000abc.pack.tmp-${dead}-0badc0de`);
    await fs.writeFile(temp, randomBytes(1000));
    const reopened = await ChunkStore.open(root, { key });
    await expect(fs.stat(temp)).rejects.toMatchObject({ code: 'ENOENT' });
    await compareServed(reopened, 'vm1/rp-1/disk0', raw);
    // a point is written once: the same name again is refused and the first stays as it was
    await expect(storeQcow2(reopened, 'vm1/rp-1/disk0', qcow2)).rejects.toMatchObject({ code: 'EEXIST' });
    await compareServed(reopened, 'vm1/rp-1/disk0', raw);
  });

  it('a pack that cannot be written (the disk full) is forgotten: its chunks are not deduplicated against, and a point naming them is refused', async () => {
    const mount = join(dir, 'small');
    await fs.mkdir(mount);
    await execa('mount', ['-t', 'tmpfs', '-o', 'size=3m', 'tmpfs', mount]);
    const store = await ChunkStore.open(join(mount, 'store'), { key });
    try {
      // 80 chunks of random data: the first 4 MiB batch does not fit in 3 MiB
      const blocks = Array.from({ length: 80 }, () => randomBytes(CHUNK_SIZE));
      const puts = await Promise.allSettled(blocks.map((b) => store.put(b)));
      const failed = puts.findIndex((p) => p.status === 'rejected');
      expect((puts[failed] as PromiseRejectedResult).reason).toMatchObject({ code: 'ENOSPC' });
      const digestOf = (i: number) => hash('sha256', blocks[i], 'buffer');
      // what that pack had taken went with it: none of it is deduplicated against any more, and no point may name it
      const lost = puts.slice(0, failed).map((p, i) => ({ at: (p as PromiseFulfilledResult<ChunkLocation>).value, i }));
      expect(lost.length).toBeGreaterThan(0);
      expect(lost.filter(({ i }) => store.has(digestOf(i)))).toEqual([]);
      await expect(store.commitPoint('vm1/rp-1/disk0', CHUNK_SIZE, [lost[0].at])).rejects.toThrow(/names a chunk this store does not hold/);
      // the abandoned pack's space came back, and what came after the failure is stored and committed
      const after = puts.slice(failed + 1).map((p) => (p as PromiseFulfilledResult<ChunkLocation>).value);
      expect(after.length).toBeGreaterThan(0);
      await store.commitPoint('vm1/rp-2/disk0', after.length * CHUNK_SIZE, after);
      const view = await store.openPoint('vm1/rp-2/disk0');
      expect((await view.read(0, after.length * CHUNK_SIZE)).equals(Buffer.concat(blocks.slice(failed + 1)))).toBe(true);
      await view.close();
      expect((await fs.readdir(join(mount, 'store', 'packs'))).filter((f) => f.startsWith('.'))).toEqual([]);
    } finally {
      await store.flush().catch(() => undefined);
      await execa('umount', [mount]);
    }
  });

  it('a point name that is not vmId/pointId/diskId is refused before anything is written', async () => {
    const root = join(dir, 'names');
    const store = await ChunkStore.open(root, { key: null });
    for (const name of ['../../escape/rp/disk', 'vm1/rp-1', 'vm1/../../disk', '/abs/rp/disk', 'vm1/rp-1/disk0/extra']) {
      await expect(store.commitPoint(name, CHUNK_SIZE, [null])).rejects.toThrow(/a point is named vmId\/pointId\/diskId/);
    }
    expect(await fs.readdir(join(root, 'points'))).toEqual([]);
    expect(await fs.readdir(dir)).not.toContain('escape');
  });
});
