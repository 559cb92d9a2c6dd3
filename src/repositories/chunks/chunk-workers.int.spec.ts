import { hash, randomBytes } from 'node:crypto';
import { promises as fs } from 'node:fs';
import { join } from 'node:path';
import execa from 'execa';
import { makeTempDir, removeTempDir } from '../../../test/fixtures/qcow2/chain-builder';
import { NbdServer } from '../../nbd-protocol/nbd-server';
import { CHUNK_SIZE, ChunkFormatError, deriveKeys, openChunk, sealChunk } from './chunk-format';
import { ChunkStore } from './chunk-store';
import { ChunkWorkers } from './chunk-workers';
import type { ChunkLocation } from './indexes';

const MiB = 1024 * 1024;
const text = Buffer.from(Array.from({ length: 3000 }, (_, i) => `2026-11-26T10:00:${String(i % 60).padStart(2, '0')}Z host app[${i % 977}]: request ${i} took ${i % 113} ms\n`).join(''));

/** A block of generated text, different for each `n`: it compresses. */
function textBlock(n: number, length = CHUNK_SIZE): Buffer {
  const block = Buffer.alloc(length);
  for (let at = 0; at < length; at += text.length) text.copy(block, at);
  block.writeUInt32BE(n, 0);
  return block;
}

/**
 * The chunk store with its records sealed and opened on worker threads (chunk-nbd's way, chunk-workers.ts) against
 * the same store without: the same records, the same points, the same deduplication, and failures that stay those
 * of the put or read they happen in.
 */
describe('ChunkWorkers: chunks sealed and opened on worker threads', () => {
  let dir: string;
  let workers: ChunkWorkers;
  const key = randomBytes(32);
  beforeAll(async () => {
    dir = await makeTempDir('chunk-workers');
    // from the first chunk on: what the tests put stays below the threshold of a pool as chunk-nbd opens it
    workers = new ChunkWorkers({ threads: 2, startAfterBytes: 0 });
  });
  afterAll(async () => {
    await workers.close();
    await removeTempDir(dir);
  });

  it("seals records the calling thread opens and opens the ones it seals, plain and encrypted, compressed or not, and refuses what does not open with the same error", async () => {
    const dataKey = deriveKeys(key).data;
    for (const k of [dataKey, null]) {
      for (const data of [randomBytes(CHUNK_SIZE), textBlock(1), randomBytes(100), textBlock(2, 5000)]) {
        const digest = hash('sha256', data, 'buffer');
        const sealed = await workers.seal(digest, data, k, 3);
        expect(openChunk(digest, sealed, k).equals(data)).toBe(true);
        expect(sealed.length).toBe(sealChunk(digest, data, k, 3).length);
        const record = sealChunk(digest, data, k, 3);
        expect((await workers.open(digest, record, k)).equals(data)).toBe(true);
        // the caller's record is left as it was unless given away
        expect(openChunk(digest, record, k).equals(data)).toBe(true);
      }
    }
    // each record the threads seal has a nonce of its own, past the pool of 512 a thread draws them from
    const block = textBlock(3, 100);
    const sealedMany = await Promise.all(Array.from({ length: 1200 }, () => workers.seal(hash('sha256', block, 'buffer'), block, dataKey, 3)));
    expect(new Set(sealedMany.map((r) => r.subarray(0, 12).toString('hex'))).size).toBe(1200);
    expect(sealedMany.every((r) => openChunk(hash('sha256', block, 'buffer'), r, dataKey).equals(block))).toBe(true);
    const data = randomBytes(CHUNK_SIZE);
    const digest = hash('sha256', data, 'buffer');
    const record = sealChunk(digest, data, dataKey, 3);
    record[20] ^= 1;
    const inThread = (() => {
      try {
        openChunk(digest, record, dataKey);
      } catch (error) {
        return error as Error;
      }
    })();
    expect(inThread).toBeInstanceOf(ChunkFormatError);
    await expect(workers.open(digest, record, dataKey)).rejects.toEqual(inThread);
    await expect(workers.open(digest, sealChunk(digest, data, dataKey, 3), randomBytes(32))).rejects.toThrow(ChunkFormatError);
    // a record that failed leaves the threads serving
    expect((await workers.open(digest, sealChunk(digest, data, dataKey, 3), dataKey)).equals(data)).toBe(true);
  });

  it('opens into shared memory and into a buffer of the caller: the same bytes as openChunk gives, in the memory given', async () => {
    const dataKey = deriveKeys(key).data;
    const shared = Buffer.from(new SharedArrayBuffer(4 * CHUNK_SIZE));
    for (const k of [dataKey, null]) {
      const blocks = [randomBytes(CHUNK_SIZE), textBlock(3), textBlock(4, 5000), randomBytes(100)];
      const opened = await Promise.all(blocks.map((data, i) => workers.open(hash('sha256', data, 'buffer'), sealChunk(hash('sha256', data, 'buffer'), data, k, 3), k, shared.subarray(i * CHUNK_SIZE, (i + 1) * CHUNK_SIZE))));
      opened.forEach((out, i) => {
        expect(out.buffer).toBe(shared.buffer);
        expect(out.byteOffset).toBe(i * CHUNK_SIZE);
        expect(out.equals(blocks[i])).toBe(true);
      });
      const own = Buffer.alloc(CHUNK_SIZE);
      const data = textBlock(5);
      const out = await workers.open(hash('sha256', data, 'buffer'), sealChunk(hash('sha256', data, 'buffer'), data, k, 3), k, own);
      expect(out.buffer).toBe(own.buffer);
      expect(own.equals(data)).toBe(true);
    }
    // a record bigger than the room given fails alone, as it does on the calling thread
    const data = textBlock(6);
    const digest = hash('sha256', data, 'buffer');
    await expect(workers.open(digest, sealChunk(digest, data, null, 3), null, shared.subarray(0, 4096))).rejects.toThrow(ChunkFormatError);
    await expect(workers.open(digest, sealChunk(digest, data, null, 3), null, Buffer.alloc(4096))).rejects.toThrow(ChunkFormatError);
  });

  it('puts made at once land in the order they were made, a block put several times at once is stored once, as without workers', async () => {
    const unique = [randomBytes(CHUNK_SIZE), textBlock(10), randomBytes(CHUNK_SIZE), textBlock(11), randomBytes(4096)];
    // the same blocks again and again, some while their first put is still being sealed
    const order = [0, 1, 0, 0, 2, 1, 3, 3, 4, 2, 0, 4, 1];
    const run = async (store: ChunkStore) => Promise.all(order.map((i) => store.put(unique[i])));
    const threaded = await ChunkStore.open(join(dir, 'order-workers'), { key, workers });
    const inThread = await ChunkStore.open(join(dir, 'order-thread'), { key });
    const a = await run(threaded);
    const b = await run(inThread);
    expect(a.map((l) => l.entry)).toEqual(b.map((l) => l.entry));
    expect(a.map((l) => l.entry)).toEqual([0, 1, 0, 0, 2, 1, 3, 3, 4, 2, 0, 4, 1]);
    expect(threaded.stats).toEqual(inThread.stats);
    expect(threaded.stats.chunks).toBe(unique.length);
    // and again once they are stored: references only
    expect(await run(threaded)).toEqual(a);
    expect(threaded.stats.chunks).toBe(unique.length);
    await threaded.flush();
    await inThread.flush();
  });

  it('a disk written by nbdcopy through the NBD server reads back byte for byte, through the workers and without, with the same chunks as a store without workers', async () => {
    // random blocks, text, blocks repeated across the disk, zeros, and a short last block
    const size = 24 * MiB + 3 * 4096;
    const disk = Buffer.alloc(size);
    const repeated = randomBytes(CHUNK_SIZE);
    for (let i = 0; i * CHUNK_SIZE < size; i++) {
      const block = i % 7 === 3 ? repeated : i % 5 === 0 ? null : i % 2 ? randomBytes(CHUNK_SIZE) : textBlock(i);
      block?.copy(disk, i * CHUNK_SIZE);
    }
    const raw = join(dir, 'disk.raw');
    await fs.writeFile(raw, disk);

    const write = async (root: string, withWorkers: boolean) => {
      const store = await ChunkStore.open(root, { key, ...(withWorkers ? { workers } : {}) });
      const writer = await store.writePoint(size, null);
      const server = await NbdServer.listenTcp('127.0.0.1', 0, { exportName: 'disk', writable: true, disk: writer });
      try {
        await execa('nbdcopy', ['--connections=1', raw, `nbd://127.0.0.1:${server.port}/disk`]);
      } finally {
        await server.close();
      }
      await writer.commit('vm1/rp-1/disk0');
      await writer.close();
      return store;
    };
    const threaded = await write(join(dir, 'nbd-workers'), true);
    const inThread = await write(join(dir, 'nbd-thread'), false);
    expect(threaded.stats).toEqual(inThread.stats);
    const blocks = Array.from({ length: Math.ceil(size / CHUNK_SIZE) }, (_, i) => disk.subarray(i * CHUNK_SIZE, (i + 1) * CHUNK_SIZE));
    for (const block of blocks) expect(threaded.has(hash('sha256', block, 'buffer'))).toBe(inThread.has(hash('sha256', block, 'buffer')));
    // the same blocks named by both points, each by the chunk of its own bytes
    const [x, y] = await Promise.all([threaded.readPoint('vm1/rp-1/disk0'), inThread.readPoint('vm1/rp-1/disk0')]);
    expect(x.blocks.map((b) => b === null)).toEqual(y.blocks.map((b) => b === null));

    const compare = async (store: ChunkStore) => {
      const view = await store.openPoint('vm1/rp-1/disk0');
      const socket = join(dir, 'read.sock');
      const server = await NbdServer.listen(socket, 'point', view);
      try {
        await execa('qemu-img', ['compare', '-f', 'raw', '-F', 'raw', `nbd+unix:///point?socket=${socket}`, raw]);
      } finally {
        await server.close();
        await view.close();
      }
    };
    // each store's point read through the workers and without: the records are the same either way
    for (const root of ['nbd-workers', 'nbd-thread']) {
      await compare(await ChunkStore.open(join(dir, root), { key, workers }));
      await compare(await ChunkStore.open(join(dir, root), { key }));
    }

    // as a download reads it (disk-images/adapters/point-reader.ts): 2 MiB pieces at once into shared buffers, whole
    // blocks opened by the threads straight into them, the parts of blocks at a piece's edges into buffers of their own
    const view = await (await ChunkStore.open(join(dir, 'nbd-workers'), { key, workers })).openPoint('vm1/rp-1/disk0');
    try {
      const pieces: Promise<Buffer>[] = [];
      for (let at = 0; at < size; at += 2 * MiB) pieces.push(view.read(at, Math.min(2 * MiB, size - at), Buffer.from(new SharedArrayBuffer(Math.min(2 * MiB, size - at)))));
      expect(Buffer.concat(await Promise.all(pieces)).equals(disk)).toBe(true);
      const piece = Buffer.from(new SharedArrayBuffer(3 * CHUNK_SIZE));
      for (const offset of [0, 100, CHUNK_SIZE - 1, 5 * CHUNK_SIZE + 4096, size - 2 * CHUNK_SIZE - 7]) {
        const length = Math.min(piece.length, size - offset);
        expect({ offset, same: (await view.read(offset, length, piece.subarray(0, length))).equals(disk.subarray(offset, offset + length)) }).toEqual({ offset, same: true });
      }
    } finally {
      await view.close();
    }
  });

  it('a thread that fails fails the put and the write it was sealing, and nothing of it is stored; a pool that is closed refuses', async () => {
    // a thread that cannot load zstd, as on a broken install: each one started dies at once
    const broken = new ChunkWorkers({ threads: 1, zstdModule: join(dir, 'no-such-module.js'), startAfterBytes: 0 });
    try {
      const store = await ChunkStore.open(join(dir, 'broken'), { key, workers: broken });
      const block = textBlock(0);
      await expect(store.put(block)).rejects.toThrow(/a chunk worker thread ended/);
      expect(store.has(hash('sha256', block, 'buffer'))).toBe(false);
      expect(store.stats.chunks).toBe(0);
      const writer = await store.writePoint(4 * CHUNK_SIZE, null);
      await expect(writer.write(0, Buffer.concat([block, textBlock(1)]))).rejects.toThrow(/a chunk worker thread ended/);
      // zeros need no chunk: the rest of the store works on
      await writer.writeZeroes(2 * CHUNK_SIZE, CHUNK_SIZE);
      await store.flush();
      expect(store.stats.chunks).toBe(0);
      expect((await fs.readdir(join(dir, 'broken', 'packs'))).filter((f) => !f.startsWith('.'))).toEqual([]);
      // a block zstd would not shrink (random, as encrypted or compressed data) is sealed on this thread, never sent
      const noise = randomBytes(CHUNK_SIZE);
      await store.put(noise);
      expect(store.stats).toMatchObject({ chunks: 1, storedBytes: CHUNK_SIZE + 1 + 28 });
    } finally {
      await broken.close();
    }
    await expect(broken.seal(Buffer.alloc(32), Buffer.alloc(10), null, 3)).rejects.toThrow(/closed/);

    // closed while it seals: the puts under way fail, those already landed stay
    const pool = new ChunkWorkers({ threads: 1, startAfterBytes: 0 });
    const store = await ChunkStore.open(join(dir, 'closing'), { key, workers: pool });
    const first = randomBytes(CHUNK_SIZE);
    const landed = await store.put(first);
    const under = Array.from({ length: 20 }, (_, i) => store.put(textBlock(100 + i)));
    await pool.close();
    expect((await Promise.allSettled(under)).some((p) => p.status === 'rejected')).toBe(true);
    await store.flush();
    await store.commitPoint('vm1/rp-1/disk0', CHUNK_SIZE, [landed]);
    const view = await (await ChunkStore.open(join(dir, 'closing'), { key })).openPoint('vm1/rp-1/disk0');
    expect((await view.read(0, CHUNK_SIZE)).equals(first)).toBe(true);
    await view.close();
  });

  it('starts its threads only once it has done startAfterBytes on the calling thread', async () => {
    // a thread that cannot start shows when threads are started: not for the first MiB, at once after it
    const broken = new ChunkWorkers({ threads: 1, zstdModule: join(dir, 'no-such-module.js'), startAfterBytes: MiB });
    try {
      const store = await ChunkStore.open(join(dir, 'threshold'), { key, workers: broken });
      const blocks = Array.from({ length: 18 }, (_, i) => textBlock(200 + i));
      const puts = await Promise.allSettled(blocks.map((b) => store.put(b)));
      expect(puts.map((p) => p.status)).toEqual([...new Array(16).fill('fulfilled'), 'rejected', 'rejected']);
      await store.flush();
      const view = await store.openPoint(await commit(store, puts));
      // reads count too: the threshold is behind, so the read fails on the thread
      await expect(view.read(0, CHUNK_SIZE)).rejects.toThrow(/a chunk worker thread ended/);
      await view.close();
    } finally {
      await broken.close();
    }

    async function commit(store: ChunkStore, puts: PromiseSettledResult<ChunkLocation>[]): Promise<string> {
      const stored = puts.flatMap((p) => (p.status === 'fulfilled' ? [p.value] : []));
      await store.commitPoint('vm1/rp-1/disk0', stored.length * CHUNK_SIZE, stored);
      return 'vm1/rp-1/disk0';
    }
  });

  it('a pack that cannot be written (the disk full) is forgotten with workers as without: a point naming its chunks is refused, what came after is stored', async () => {
    const mount = join(dir, 'small');
    await fs.mkdir(mount);
    await execa('mount', ['-t', 'tmpfs', '-o', 'size=3m', 'tmpfs', mount]);
    const store = await ChunkStore.open(join(mount, 'store'), { key, workers });
    try {
      const blocks = Array.from({ length: 80 }, () => randomBytes(CHUNK_SIZE));
      const puts = await Promise.allSettled(blocks.map((b) => store.put(b)));
      const failed = puts.findIndex((p) => p.status === 'rejected');
      expect((puts[failed] as PromiseRejectedResult).reason).toMatchObject({ code: 'ENOSPC' });
      const lost = puts.slice(0, failed).map((p, i) => ({ at: (p as PromiseFulfilledResult<ChunkLocation>).value, i }));
      expect(lost.length).toBeGreaterThan(0);
      expect(lost.filter(({ i }) => store.has(hash('sha256', blocks[i], 'buffer')))).toEqual([]);
      await expect(store.commitPoint('vm1/rp-1/disk0', CHUNK_SIZE, [lost[0].at])).rejects.toThrow(/names a chunk this store does not hold/);
      const after = puts.slice(failed + 1).map((p) => (p as PromiseFulfilledResult<ChunkLocation>).value);
      expect(after.length).toBeGreaterThan(0);
      await store.commitPoint('vm1/rp-2/disk0', after.length * CHUNK_SIZE, after);
      const view = await store.openPoint('vm1/rp-2/disk0');
      expect((await view.read(0, after.length * CHUNK_SIZE)).equals(Buffer.concat(blocks.slice(failed + 1)))).toBe(true);
      await view.close();
      // a block of the lost pack put again is stored again
      const again = await store.put(blocks[0]);
      await store.commitPoint('vm1/rp-3/disk0', CHUNK_SIZE, [again]);
    } finally {
      await store.flush().catch(() => undefined);
      await execa('umount', [mount]);
    }
  });
});
