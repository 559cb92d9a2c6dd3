import { hash, randomBytes } from 'node:crypto';
import { promises as fs } from 'node:fs';
import { join } from 'node:path';
import execa from 'execa';
import { decompress } from 'zstd-napi';
import { makeTempDir, removeTempDir } from '../../../test/fixtures/qcow2/chain-builder';
import { ext4Image } from '../../../test/fixtures/restore/filesystem-images';
import { BASE_ALLOCATION, NBD_STATE_HOLE, NBD_STATE_ZERO } from '../../nbd-protocol/constants';
import { NbdServer, ReadableDisk } from '../../nbd-protocol/nbd-server';
import { openNbd } from '../../nbd-protocol/open-nbd';
import { pskStartTls } from '../../nbd-protocol/tls-psk';
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

  it('gives the blocks of a range as stored, for a download to send packed: zstd that decompresses to the disk, the rest as it is, the short last block as read; a range off the blocks\' edges refused', async () => {
    const store = await ChunkStore.open(join(dir, 'packed'), { key });
    await storeQcow2(store, 'vm1/rp-1/disk0', qcow2);
    const view = await store.openPoint('vm1/rp-1/disk0');
    const disk = await fs.readFile(raw);
    try {
      const rebuilt = Buffer.alloc(size);
      let compressed = 0;
      for (let at = 0; at < size; at += 2 * MiB) {
        for (const block of await view.readPacked(at, Math.min(2 * MiB, size - at))) {
          const bytes = block.compressed ? decompress(block.body) : block.body;
          expect(bytes.length).toBe(block.length);
          if (block.compressed) compressed++;
          bytes.copy(rebuilt, block.offset);
        }
      }
      expect(rebuilt.equals(disk)).toBe(true);
      // the log and the licenses compress; the random file does not
      expect(compressed).toBeGreaterThan(10);
      await expect(view.readPacked(4096, CHUNK_SIZE)).rejects.toThrow(/not whole blocks/);
      await expect(view.readPacked(0, CHUNK_SIZE + 1)).rejects.toThrow(/not whole blocks/);
    } finally {
      await view.close();
    }
    // a disk whose short last block holds data: text, random, a hole, then 1000 bytes
    const small = Buffer.alloc(3 * CHUNK_SIZE + 1000);
    small.write('text that compresses well '.repeat(2600), 0);
    randomBytes(CHUNK_SIZE).copy(small, CHUNK_SIZE);
    randomBytes(1000).copy(small, 3 * CHUNK_SIZE);
    const writer = await store.writePoint(small.length, null);
    await writer.write(0, small);
    await writer.commit('vm2/rp-1/disk0');
    const tailed = await store.openPoint('vm2/rp-1/disk0');
    try {
      const blocks = await tailed.readPacked(0, small.length);
      expect(blocks.map(({ offset, length, compressed }) => ({ offset, length, compressed }))).toEqual([
        { offset: 0, length: CHUNK_SIZE, compressed: true },
        { offset: CHUNK_SIZE, length: CHUNK_SIZE, compressed: false },
        { offset: 3 * CHUNK_SIZE, length: 1000, compressed: false },
      ]);
      expect(decompress(blocks[0].body).equals(small.subarray(0, CHUNK_SIZE))).toBe(true);
      expect(blocks[1].body.equals(small.subarray(CHUNK_SIZE, 2 * CHUNK_SIZE))).toBe(true);
      expect(blocks[2].body.equals(small.subarray(3 * CHUNK_SIZE))).toBe(true);
    } finally {
      await tailed.close();
    }
  });

  it('answers reads made at once (as a guest or nbdfuse makes them) each with its own bytes, also a read across the block it kept from the one before', async () => {
    const store = await ChunkStore.open(join(dir, 'at-once'), { key });
    await storeQcow2(store, 'vm1/rp-1/disk0', qcow2);
    const disk = await fs.readFile(raw);
    const view = await store.openPoint('vm1/rp-1/disk0');
    const expectRead = async (offset: number, length: number) => expect({ offset, same: (await view.read(offset, length)).equals(disk.subarray(offset, offset + length)) }).toEqual({ offset, same: true });
    // blocks whose data ends in something other than zeros: a part answered as zeros shows
    const blocks = Array.from({ length: size / CHUNK_SIZE - 2 }, (_, i) => i).filter((i) => disk.subarray((i + 1) * CHUNK_SIZE - 4096, (i + 1) * CHUNK_SIZE).some((b) => b !== 0) && disk.subarray((i + 1) * CHUNK_SIZE, (i + 1) * CHUNK_SIZE + 4096).some((b) => b !== 0));
    expect(blocks.length).toBeGreaterThan(20);
    try {
      for (const [k, i] of blocks.entries()) {
        // the view keeps block i; then a read across i and i + 1 waits for i + 1 while a read of another block is
        // answered and becomes the one kept
        await expectRead(i * CHUNK_SIZE + 100, 100);
        const other = blocks[(k * 7 + 13) % blocks.length];
        await Promise.all([expectRead((i + 1) * CHUNK_SIZE - 4096, 8192), expectRead(other * CHUNK_SIZE + 200, 100)]);
      }
    } finally {
      await view.close();
    }
  });

  it('reads each chunk back as it was put: from the records not yet written, from the pack being written and once published, plain and sealed', async () => {
    // random blocks are sealed on this thread as pieces written with one writev; text blocks go to zstd; the 80
    // random ones (5 MiB) fill one 4 MiB write batch and leave the rest in memory
    const blocks = Array.from({ length: 120 }, (_, i) => (i % 3 === 2 ? Buffer.from(`block ${i} `.repeat(CHUNK_SIZE / 8).slice(0, CHUNK_SIZE)) : randomBytes(CHUNK_SIZE)));
    for (const [name, storeKey] of [['pieces-plain', null], ['pieces-sealed', key]] as const) {
      const store = await ChunkStore.open(join(dir, name), { key: storeKey });
      const reader = store.reader();
      const at: ChunkLocation[] = [];
      for (const block of blocks) {
        at.push(await store.put(block));
        // the newest is still in memory; the ones a 4 MiB batch wrote are in the temp pack
        expect((await reader.read(at[at.length - 1])).equals(block)).toBe(true);
      }
      expect((await fs.stat(join(dir, name, 'packs', (await fs.readdir(join(dir, name, 'packs')))[0]))).size).toBeGreaterThanOrEqual(4 * MiB);
      const read = await reader.readMany(at);
      expect(read.map((b, i) => b.equals(blocks[i]))).toEqual(blocks.map(() => true));
      await store.flush();
      const reopened = (await ChunkStore.open(join(dir, name), { key: storeKey })).reader();
      expect((await reopened.readMany(at)).map((b, i) => b.equals(blocks[i]))).toEqual(blocks.map(() => true));
      await Promise.all([reader.close(), reopened.close()]);
    }
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

  it("reads only the pack indexes it needs: a point and an incremental of it work beside another point's damaged pack index, which fails only a block new to the store or a read of that point's blocks", async () => {
    const root = join(dir, 'lazy');
    const points = ['vm1/rp-1/disk0', 'vm2/rp-1/disk0'];
    const data = points.map(() => randomBytes(4 * CHUNK_SIZE));
    const packOf = new Map<string, string>();
    for (const [i, name] of points.entries()) {
      // a store of its own for each: each point's chunks in a pack of their own
      const writer = await (await ChunkStore.open(root, { key })).writePoint(data[i].length, null);
      await writer.write(0, data[i]);
      await writer.commit(name);
      await writer.close();
      const packs = (await fs.readdir(join(root, 'packs'))).filter((f) => f.endsWith('.idx')).map((f) => f.slice(0, -4));
      packOf.set(name, packs.find((p) => ![...packOf.values()].includes(p))!);
    }
    // a new block found in a pack the writer read only when it needed to: stored once
    const dedup = await (await ChunkStore.open(root, { key })).writePoint(CHUNK_SIZE, null);
    await dedup.write(0, data[1].subarray(CHUNK_SIZE, 2 * CHUNK_SIZE));
    await dedup.commit('vm3/rp-1/disk0');
    await dedup.close();
    expect((await fs.readdir(join(root, 'packs'))).filter((f) => f.endsWith('.idx'))).toHaveLength(2);

    // the open reads the first pack's index (a wrong key fails there); the other point's is damaged
    const [ours, other] = [...points].sort((a, b) => packOf.get(a)!.localeCompare(packOf.get(b)!));
    await fs.writeFile(join(root, 'packs', `${packOf.get(other)}.idx`), randomBytes(300));
    const store = await ChunkStore.open(root, { key });
    const view = await store.openPoint(ours);
    expect((await view.read(0, 4 * CHUNK_SIZE)).equals(data[points.indexOf(ours)])).toBe(true);
    await view.close();
    // an incremental that writes blocks the point holds already, and one block of zeros
    const incremental = await store.writePoint(4 * CHUNK_SIZE, ours);
    await incremental.write(CHUNK_SIZE, data[points.indexOf(ours)].subarray(0, CHUNK_SIZE));
    await incremental.write(3 * CHUNK_SIZE, Buffer.alloc(CHUNK_SIZE));
    await incremental.commit('vm1/rp-2/disk0');
    await incremental.close();
    const next = await store.openPoint('vm1/rp-2/disk0');
    const want = Buffer.from(data[points.indexOf(ours)]);
    want.set(want.subarray(0, CHUNK_SIZE), CHUNK_SIZE);
    want.fill(0, 3 * CHUNK_SIZE);
    expect((await next.read(0, 4 * CHUNK_SIZE)).equals(want)).toBe(true);
    await next.close();
    expect(store.stats.chunks).toBe(0);
    // a writer on the point whose pack index is damaged starts and commits what it kept without reading that index:
    // only its first read of a block (or write) needs it, and reports it
    const kept = await store.writePoint(4 * CHUNK_SIZE, other);
    await kept.commit('vm2/rp-2/disk0');
    expect((await store.readPoint('vm2/rp-2/disk0')).blocks).toEqual((await store.readPoint(other)).blocks);
    await expect(kept.read(0, CHUNK_SIZE)).rejects.toThrow(new RegExp(`pack ${packOf.get(other)}`));
    await kept.close();
    // a block new to the store needs every pack's index, and the damaged one is reported
    const fresh = await store.writePoint(CHUNK_SIZE, null);
    await expect(fresh.write(0, randomBytes(CHUNK_SIZE))).rejects.toThrow(new RegExp(`pack ${packOf.get(other)}`));
    await fresh.close();
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

/**
 * A point with holes (blocks the index names no chunk for) served by the hub's NBD server: base:allocation tells
 * them from data to our own client, to libnbd (nbdinfo, nbdcopy) and to qemu, which then copy the point without
 * reading its holes, on a Unix socket and over TCP with TLS-PSK.
 */
describe('ChunkPointView: holes and data, as NBD clients map and copy them', () => {
  let dir: string;
  let store: ChunkStore;
  let expected: string;
  const name = 'vm1/rp-1/disk0';
  /**
   * 102 blocks, the last of 5000 bytes: data in 0-2, 35 (its first 4 KiB, zeros after) and 68-70; holes of 2 MiB
   * between, and to the end. Seven blocks of data in 6 MiB: a client that reads the holes reads 14 times as much.
   */
  const size = 101 * CHUNK_SIZE + 5000;
  const disk = Buffer.alloc(size);
  const runs: [offset: number, length: number, zero: boolean][] = [
    [0, 3 * CHUNK_SIZE, false],
    [3 * CHUNK_SIZE, 32 * CHUNK_SIZE, true],
    [35 * CHUNK_SIZE, CHUNK_SIZE, false],
    [36 * CHUNK_SIZE, 32 * CHUNK_SIZE, true],
    [68 * CHUNK_SIZE, 3 * CHUNK_SIZE, false],
    [71 * CHUNK_SIZE, 30 * CHUNK_SIZE + 5000, true],
  ];
  const dataBytes = 7 * CHUNK_SIZE;
  /** nbdcopy reads a whole request when any of it is data: requests of a block read only the data blocks. */
  const nbdcopy = (uri: string, copy: string) => execa('nbdcopy', [`--request-size=${CHUNK_SIZE}`, uri, copy]);
  const psk = { identity: 'sendense', key: randomBytes(32) };

  beforeAll(async () => {
    dir = await makeTempDir('chunk-holes');
    randomBytes(3 * CHUNK_SIZE).copy(disk, 0);
    randomBytes(4096).copy(disk, 35 * CHUNK_SIZE);
    randomBytes(3 * CHUNK_SIZE).copy(disk, 68 * CHUNK_SIZE);
    expected = join(dir, 'expected.raw');
    await fs.writeFile(expected, disk);
    store = await ChunkStore.open(join(dir, 'store'), { key: randomBytes(32) });
    await storeDisk(store, name, { size, read: async (offset, length) => Buffer.from(disk.subarray(offset, offset + length)) });
    await fs.writeFile(join(dir, 'keys.psk'), `${psk.identity}:${psk.key.toString('hex')}\n`, { mode: 0o600 });
  });
  afterAll(async () => removeTempDir(dir));

  /** The point on a Unix socket (or TCP with TLS), counting the bytes its clients read. */
  async function serving(work: (uri: string, read: () => number, port: number) => Promise<void>, tls = false): Promise<void> {
    const view = await store.openPoint(name);
    let read = 0;
    const counted: ReadableDisk = {
      size: view.size,
      read: (offset, length, into) => {
        read += length;
        return view.read(offset, length, into);
      },
      allocation: (offset, length) => view.allocation(offset, length),
    };
    const socket = join(dir, `${randomBytes(4).toString('hex')}.sock`);
    const server = tls ? await NbdServer.listenTcp('127.0.0.1', 0, { exportName: 'point', disk: counted, tls: psk }) : await NbdServer.listen(socket, 'point', counted);
    try {
      await work(tls ? `nbds://${psk.identity}@127.0.0.1:${server.port}/point?tls-psk-file=${join(dir, 'keys.psk')}` : `nbd+unix:///point?socket=${socket}`, () => read, server.port);
    } finally {
      await server.close();
      await view.close();
    }
  }

  const flagsOf = (zero: boolean) => (zero ? NBD_STATE_HOLE | NBD_STATE_ZERO : 0);

  it('reports its blocks as runs, neighbours merged, the short last block to the end', async () => {
    const view = await store.openPoint(name);
    try {
      expect(await view.allocation(0, size)).toEqual(runs.map(([, length, zero]) => ({ length, zero })));
      expect(await view.allocation(CHUNK_SIZE + 7, 3 * CHUNK_SIZE)).toEqual([
        { length: 2 * CHUNK_SIZE - 7, zero: false },
        { length: CHUNK_SIZE + 7, zero: true },
      ]);
      expect(await view.allocation(size - 100, 100)).toEqual([{ length: 100, zero: true }]);
      await expect(view.allocation(size - 100, 101)).rejects.toThrow(RangeError);
    } finally {
      await view.close();
    }
  });

  it('a point being written reports its blocks as written so far, on the base it follows', async () => {
    const writer = await store.writePoint(size, name);
    try {
      await writer.write(10 * CHUNK_SIZE + 100, randomBytes(100));
      await writer.writeZeroes(35 * CHUNK_SIZE, CHUNK_SIZE);
      expect(await writer.allocation(0, 40 * CHUNK_SIZE)).toEqual([
        { length: 3 * CHUNK_SIZE, zero: false },
        { length: 7 * CHUNK_SIZE, zero: true },
        { length: CHUNK_SIZE, zero: false },
        { length: 29 * CHUNK_SIZE, zero: true },
      ]);
    } finally {
      await writer.close();
      await store.flush();
    }
  });

  it("maps and reads for the hub's own client with structured replies, whole and one extent at a time", async () => {
    await serving(async (uri) => {
      const client = await openNbd(uri, { metaContexts: [BASE_ALLOCATION] });
      try {
        const map = (await client.blockStatusAll(0, size)).get(BASE_ALLOCATION);
        expect(map).toEqual(runs.map(([offset, length, zero]) => ({ offset, length, flags: flagsOf(zero) })));
        // a request that starts and ends inside runs is described inside it, no further
        const part = (await client.blockStatus(2 * CHUNK_SIZE + 100, CHUNK_SIZE)).get(BASE_ALLOCATION);
        expect(part).toEqual([
          { offset: 2 * CHUNK_SIZE + 100, length: CHUNK_SIZE - 100, flags: 0 },
          { offset: 3 * CHUNK_SIZE, length: 100, flags: NBD_STATE_HOLE | NBD_STATE_ZERO },
        ]);
        const one = (await client.blockStatus(0, size, { reqOne: true })).get(BASE_ALLOCATION);
        expect(one).toEqual([{ offset: 0, length: 3 * CHUNK_SIZE, flags: 0 }]);
        expect((await client.read(0, size)).equals(disk)).toBe(true);
        expect((await client.read(35 * CHUNK_SIZE + 4000, 200)).equals(disk.subarray(35 * CHUNK_SIZE + 4000, 35 * CHUNK_SIZE + 4200))).toBe(true);
        await expect(client.read(size - 512, 1024)).rejects.toThrow();
        await expect(client.blockStatus(size - 512, 1024)).rejects.toThrow();
        expect((await client.read(size - 512, 512)).equals(disk.subarray(size - 512))).toBe(true);
      } finally {
        await client.close();
      }
    });
  });

  it('shows nbdinfo and qemu-img the same map, and nbdinfo the context it offers', async () => {
    await serving(async (uri) => {
      const info = JSON.parse((await execa('nbdinfo', ['--json', uri])).stdout);
      expect(info.exports[0].contexts).toEqual([BASE_ALLOCATION]);
      const nbdinfo = JSON.parse((await execa('nbdinfo', ['--map', '--json', uri])).stdout) as { offset: number; length: number; type: number }[];
      expect(nbdinfo.map(({ offset, length, type }) => [offset, length, type])).toEqual(runs.map(([offset, length, zero]) => [offset, length, flagsOf(zero)]));
      const qemu = JSON.parse((await execa('qemu-img', ['map', '--output=json', '-f', 'raw', uri])).stdout) as { start: number; length: number; data: boolean; zero: boolean }[];
      // qemu sees the disk to its next 512 bytes, the rest as zeros: the export's map is what lies before its end
      expect(qemu.filter(({ start }) => start < size).map(({ start, length, data, zero }) => ({ start, length, data, zero }))).toEqual(runs.map(([start, length, zero]) => ({ start, length, data: !zero, zero })));
    });
  });

  it('is copied by qemu-img convert and by nbdcopy byte for byte, its holes not read', async () => {
    for (const copier of ['qemu-img', 'nbdcopy']) {
      await serving(async (uri, read) => {
        const copy = join(dir, `${copier}.raw`);
        if (copier === 'qemu-img') await execa('qemu-img', ['convert', '-f', 'raw', '-O', 'raw', uri, copy]);
        else await nbdcopy(uri, copy);
        await execa('qemu-img', ['compare', '-f', 'raw', '-F', 'raw', copy, expected]);
        expect(read()).toBeLessThanOrEqual(dataBytes);
        await fs.rm(copy);
      });
    }
  });

  it('does all of it over TCP with TLS-PSK', async () => {
    await serving(async (uri, read, port) => {
      const client = await openNbd(`nbd://127.0.0.1:${port}/point`, { metaContexts: [BASE_ALLOCATION], startTls: pskStartTls({ identity: psk.identity, key: psk.key.toString('hex') }) });
      try {
        expect((await client.blockStatusAll(0, size)).get(BASE_ALLOCATION)).toEqual(runs.map(([offset, length, zero]) => ({ offset, length, flags: flagsOf(zero) })));
        expect((await client.read(0, size)).equals(disk)).toBe(true);
      } finally {
        await client.close();
      }
      const nbdinfo = JSON.parse((await execa('nbdinfo', ['--map', '--json', uri])).stdout) as { offset: number; length: number; type: number }[];
      expect(nbdinfo.map(({ offset, length, type }) => [offset, length, type])).toEqual(runs.map(([offset, length, zero]) => [offset, length, flagsOf(zero)]));
      const nbd = { driver: 'nbd', server: { type: 'inet', host: '127.0.0.1', port: String(port) }, export: 'point', 'tls-creds': 'tls0' };
      const qemuArgs = ['--object', `tls-creds-psk,id=tls0,endpoint=client,dir=${dir},username=${psk.identity}`, '--output=json', '-f', 'raw', `json:${JSON.stringify({ driver: 'raw', file: nbd })}`];
      const qemu = JSON.parse((await execa('qemu-img', ['map', ...qemuArgs])).stdout) as { start: number; length: number; data: boolean; zero: boolean }[];
      expect(qemu.filter(({ start }) => start < size).map(({ start, length, data, zero }) => ({ start, length, data, zero }))).toEqual(runs.map(([start, length, zero]) => ({ start, length, data: !zero, zero })));
      const before = read();
      const copy = join(dir, 'tls.raw');
      await nbdcopy(uri, copy);
      await execa('qemu-img', ['compare', '-f', 'raw', '-F', 'raw', copy, expected]);
      expect(read() - before).toBeLessThanOrEqual(dataBytes);
      await fs.rm(copy);
    }, true);
  });
});
