import { spawn, spawnSync } from 'node:child_process';
import { hash, randomBytes } from 'node:crypto';
import { existsSync, promises as fs, readFileSync } from 'node:fs';
import { hostname } from 'node:os';
import { dirname, join } from 'node:path';
import { chunkNbdProcesses } from '../../../test/support/chunk-nbd-processes';
import { freePort } from '../../../test/support/processes';
import type { ReadableDisk } from '../../nbd-protocol/nbd-server';
import { ChildProcessHandle } from '../../process/child-process';
import { runProcess } from '../../process/run-process';
import { QemuNbdLaunch, waitUntilServing } from '../../qemu/qemu-nbd-launcher';
import { CHUNK_SIZE, deriveKeys, openMeta, sealMeta } from './chunk-format';
import { decodeMovedPack, encodeMovedPack, movedRecordName } from './moved-packs';
import { CHUNK_NBD_MAIN } from './chunk-nbd/chunk-nbd-args';
import { removeEmptyPointDir } from './chunk-points';
import { ChunkStore, readPointDigests, readPointPackFiles, storeDisk } from './chunk-store';
import { collectGarbage, GcError, measureGarbage } from './gc';
import { lockForCollection, registerWriter } from './store-lock';

const BLOCKS = 32;
const SIZE = BLOCKS * CHUNK_SIZE;
const COMPILED = dirname(dirname(CHUNK_NBD_MAIN));

/**
 * Garbage collection of real chunk stores: points written by the store itself and by real chunk-nbd processes (the
 * program `npm run build` compiled), deleted as a restore point's delete does, collected, and read back byte for byte.
 */
describe('collectGarbage: a chunk store frees the packs no point names, never under a writer, and survives a kill', () => {
  const { path, spawn: serve } = chunkNbdProcesses('chunk-gc');
  let count = 0;

  async function newStore(): Promise<string> {
    const store = path(`store-${++count}`);
    await fs.mkdir(store);
    return store;
  }

  const blocks = (n: number) => Array.from({ length: n }, () => randomBytes(CHUNK_SIZE));
  const diskOf = (data: Buffer): ReadableDisk => ({
    size: data.length,
    read: async (offset, length, into) => {
      const out = into ?? Buffer.alloc(length);
      data.copy(out, 0, offset, offset + length);
      return out;
    },
  });

  /** A point written in a store session of its own: the chunks it adds land in one new pack. */
  async function writePoint(store: string, key: Buffer | null, name: string, data: Buffer): Promise<void> {
    await storeDisk(await ChunkStore.open(store, { key }), name, diskOf(data));
  }

  /** The point's disk, read through a store opened anew. */
  async function readPoint(store: string, key: Buffer | null, name: string): Promise<Buffer> {
    const view = await (await ChunkStore.open(store, { key })).openPoint(name);
    try {
      return await view.read(0, view.size);
    } finally {
      await view.close();
    }
  }

  /** As a restore point's delete removes it (src/restore-points/chain-files.ts). */
  async function deletePoint(store: string, name: string): Promise<void> {
    const file = join(store, 'points', `${name}.idx`);
    await fs.rm(file);
    await removeEmptyPointDir(file);
  }

  const packFiles = async (store: string) => (await fs.readdir(join(store, 'packs'))).sort();
  const packIds = async (store: string) => (await packFiles(store)).filter((f) => f.endsWith('.idx')).map((f) => f.slice(0, -4));
  const namesIn = async (store: string, sub: string) => fs.readdir(join(store, sub)).catch(() => [] as string[]);

  /** A collection of a plain store in a process of its own, SIGKILLed at the `n`th call of its `hook`: the signal it ended by. */
  async function collectionKilled(store: string, hook: 'onDelete' | 'release', n: number): Promise<string | null> {
    const script = `let n = 0; require(${JSON.stringify(join(COMPILED, 'gc.js'))}).collectGarbage(process.argv[1], { key: null, ${hook}: () => { if (++n === ${n}) process.kill(process.pid, 'SIGKILL'); } })`;
    return new Promise((resolve) => spawn(process.execPath, ['-e', script, store], { stdio: 'inherit' }).once('exit', (_code, signal) => resolve(signal)));
  }

  /** A pid that was a process's and is no more. */
  const deadPid = () => spawnSync('true').pid!;


  async function ready(started: { handle: ChildProcessHandle; launch: QemuNbdLaunch }, timeoutMs = 15_000): Promise<string> {
    return waitUntilServing(started.handle, started.launch, timeoutMs);
  }

  /** A chunk-nbd process writing `name`, serving on loopback, and the port it serves on. */
  async function writer(store: string, name: string): Promise<{ handle: ChildProcessHandle; launch: QemuNbdLaunch; port: number }> {
    const port = await freePort();
    return { ...serve({ store, point: { commit: name, size: SIZE }, listen: { host: '127.0.0.1', port }, exportName: 'target' }), port };
  }

  /** Every file under the store but the temp ones (litter a store's figures do not count). */
  async function bytesOfFiles(dir: string): Promise<number> {
    let total = 0;
    for (const entry of await fs.readdir(dir, { withFileTypes: true })) {
      const file = join(dir, entry.name);
      if (entry.isDirectory()) total += await bytesOfFiles(file);
      else if (!entry.name.startsWith('.')) total += (await fs.stat(file)).size;
    }
    return total;
  }

  async function copyInto(port: number, data: Buffer): Promise<void> {
    const raw = path(`disk-${++count}.raw`);
    await fs.writeFile(raw, data);
    await runProcess('nbdcopy', [raw, `nbd://127.0.0.1:${port}/target`]);
  }

  async function stop({ handle, launch }: { handle: ChildProcessHandle; launch: QemuNbdLaunch }): Promise<void> {
    handle.signal('SIGTERM');
    expect({ status: await handle.exited, log: readFileSync(launch.logFile, 'utf8') }).toEqual({ status: { code: 0, signal: null }, log: '' });
  }

  it('frees only the packs no remaining point names, across VMs; the rest reads back byte for byte; all deleted, all freed', async () => {
    const store = await newStore();
    const a = blocks(BLOCKS);
    const bData = Buffer.concat([...blocks(4), ...a.slice(4)]);
    const cData = Buffer.concat([...a.slice(20, 28), ...blocks(8), Buffer.alloc(16 * CHUNK_SIZE)]);
    await writePoint(store, null, 'vm1/rp-a/disk0', Buffer.concat(a));
    const [packA] = await packIds(store);
    await writePoint(store, null, 'vm1/rp-b/disk0', bData);
    await writePoint(store, null, 'vm2/rp-c/disk0', cData);
    const beforeD = await packIds(store);
    await writePoint(store, null, 'vm1/rp-d/disk0', Buffer.concat(blocks(BLOCKS)));
    const [packD] = (await packIds(store)).filter((p) => !beforeD.includes(p));
    // what is protected (blocks that are not zeros, each point whole), once per distinct chunk, and every file of the store
    expect(await measureGarbage(store, { key: null })).toEqual({
      packsToRemove: 0, packsToRepack: 0, bytesToFree: 0, packsKept: 4, liveChunks: 32 + 4 + 8 + 32, liveBytes: expect.any(Number), deadChunksKept: 0, deadBytesKept: 0,
      pointDisks: 4, logicalBytes: (32 + 32 + 16 + 32) * CHUNK_SIZE, uniqueBytes: (32 + 4 + 8 + 32) * CHUNK_SIZE, storedBytes: await bytesOfFiles(store),
    });

    await deletePoint(store, 'vm1/rp-a/disk0');
    await deletePoint(store, 'vm1/rp-d/disk0');
    // litter of dead writers: a pack published without its index, and a temp pack
    const orphan = join(store, 'packs', `${randomBytes(8).toString('hex')}.pack`);
    await fs.writeFile(orphan, randomBytes(1000));
    const temp = join(store, 'packs', `.${randomBytes(8).toString('hex')}.pack.tmp-${deadPid()}-0badf00d`);
    await fs.writeFile(temp, randomBytes(1000));
    // a writer killed in its commit: its point's directory holds only its temp index; a live process's stays
    const deadCommit = join(store, 'points', 'vm3', 'rp-e');
    await fs.mkdir(deadCommit, { recursive: true });
    await fs.writeFile(join(deadCommit, `.disk0.idx.tmp-${deadPid()}-0badf00d`), randomBytes(100));
    const liveCommit = join(store, 'points', 'vm3', 'rp-f', `.disk0.idx.tmp-${process.pid}-0badf00d`);
    await fs.mkdir(dirname(liveCommit), { recursive: true });
    await fs.writeFile(liveCommit, randomBytes(100));
    const dFiles = (await Promise.all(['pack', 'idx'].map((kind) => fs.stat(join(store, 'packs', `${packD}.${kind}`))))).reduce((sum, s) => sum + s.size, 0);

    const measured = await measureGarbage(store, { key: null });
    // A's pack stays for B and C; its first four chunks, now B's own, are dead but kept with it (an eighth of its bytes: no repack)
    expect(measured).toEqual({
      packsToRemove: 2, packsToRepack: 0, bytesToFree: dFiles + 1000, packsKept: 3, liveChunks: 28 + 4 + 8, liveBytes: expect.any(Number), deadChunksKept: 4, deadBytesKept: expect.any(Number),
      pointDisks: 2, logicalBytes: (32 + 16) * CHUNK_SIZE, uniqueBytes: 40 * CHUNK_SIZE, storedBytes: await bytesOfFiles(store),
    });
    expect(measured.deadBytesKept).toBeGreaterThan(4 * CHUNK_SIZE);
    const result = await collectGarbage(store, { key: null });
    const { packsToRemove, packsToRepack, bytesToFree, ...kept } = measured;
    expect(result).toEqual({ status: 'done', packsRemoved: packsToRemove, packsRepacked: packsToRepack, bytesFreed: bytesToFree, ...kept, durationMs: expect.any(Number) });
    expect(await packIds(store)).toHaveLength(3);
    expect(await packIds(store)).toContain(packA);
    for (const gone of [join(store, 'packs', `${packD}.pack`), join(store, 'packs', `${packD}.idx`), orphan, temp, deadCommit]) expect(existsSync(gone)).toBe(false);
    expect(existsSync(liveCommit)).toBe(true);
    await fs.rm(dirname(liveCommit), { recursive: true });
    expect((await readPoint(store, null, 'vm1/rp-b/disk0')).equals(bData)).toBe(true);
    expect((await readPoint(store, null, 'vm2/rp-c/disk0')).equals(cData)).toBe(true);
    expect(await namesIn(store, 'gc')).toEqual([]);
    expect(await measureGarbage(store, { key: null })).toMatchObject({ packsToRemove: 0, bytesToFree: 0 });

    await deletePoint(store, 'vm1/rp-b/disk0');
    await deletePoint(store, 'vm2/rp-c/disk0');
    expect(await collectGarbage(store, { key: null })).toMatchObject({ status: 'done', packsRemoved: 3, packsKept: 0, liveChunks: 0, liveBytes: 0, deadChunksKept: 0 });
    expect(await packFiles(store)).toEqual([]);
  }, 60_000);

  it('stops before the sweep, removing nothing, when a point index of an encrypted store does not open', async () => {
    const store = await newStore();
    const key = randomBytes(32);
    const a = blocks(BLOCKS);
    await writePoint(store, key, 'vm1/rp-1/disk0', Buffer.concat(a));
    await writePoint(store, key, 'vm1/rp-2/disk0', Buffer.concat([...blocks(2), ...a.slice(2)]));
    await writePoint(store, key, 'vm1/rp-3/disk0', Buffer.concat(blocks(BLOCKS)));
    await deletePoint(store, 'vm1/rp-3/disk0');
    const index = join(store, 'points', 'vm1/rp-2/disk0.idx');
    const good = await fs.readFile(index);
    const damaged = Buffer.from(good);
    damaged[damaged.length - 1] ^= 1;
    await fs.writeFile(index, damaged);
    const files = await packFiles(store);

    const refused = /the point index .*vm1\/rp-2\/disk0\.idx cannot be read \(point vm1\/rp-2\/disk0 does not open with this repository's key: another key, or damaged\): nothing was collected/;
    await expect(collectGarbage(store, { key })).rejects.toThrow(refused);
    await expect(collectGarbage(store, { key })).rejects.toBeInstanceOf(GcError);
    await expect(measureGarbage(store, { key })).rejects.toThrow(refused);
    expect(await packFiles(store)).toEqual(files);
    await fs.writeFile(index, good);
    await expect(collectGarbage(store, { key: randomBytes(32) })).rejects.toThrow(/cannot be read/);
    expect(await packFiles(store)).toEqual(files);
    expect(await namesIn(store, 'gc')).toEqual([]);

    expect(await collectGarbage(store, { key })).toMatchObject({ status: 'done', packsRemoved: 1, packsKept: 2 });
    expect((await readPoint(store, key, 'vm1/rp-1/disk0')).equals(Buffer.concat(a))).toBe(true);
  }, 60_000);

  it('is busy under a live chunk-nbd writer, which may be deduplicating against a pack no point names; runs once it exits', async () => {
    const store = await newStore();
    const a = Buffer.concat(blocks(BLOCKS));
    await writePoint(store, null, 'vm1/rp-1/disk0', a);
    await deletePoint(store, 'vm1/rp-1/disk0');
    const files = await packFiles(store);
    expect(await measureGarbage(store, { key: null })).toMatchObject({ packsToRemove: 1 });

    const started = await writer(store, 'vm1/rp-2/disk0');
    expect(await ready(started)).toBe('ready');
    expect(await namesIn(store, 'writers')).toHaveLength(1);
    expect(await collectGarbage(store, { key: null })).toEqual({ status: 'busy', writers: 1, collections: 0 });
    expect(await packFiles(store)).toEqual(files);
    // the same disk again: every block is a chunk of the pack the collection would have freed
    await copyInto(started.port, a);
    await stop(started);
    expect(await namesIn(store, 'writers')).toEqual([]);
    expect(await packFiles(store)).toEqual(files);
    expect((await readPoint(store, null, 'vm1/rp-2/disk0')).equals(a)).toBe(true);

    expect(await collectGarbage(store, { key: null })).toMatchObject({ status: 'done', packsRemoved: 0, packsKept: 1, liveChunks: BLOCKS });
    await deletePoint(store, 'vm1/rp-2/disk0');
    expect(await collectGarbage(store, { key: null })).toMatchObject({ status: 'done', packsRemoved: 1 });
    expect(await packFiles(store)).toEqual([]);
  }, 60_000);

  it('makes a chunk-nbd writer wait while a live collection holds the store, and go on once it is over', async () => {
    const store = await newStore();
    const lock = await lockForCollection(store);
    expect(lock.held).toBe(true);
    if (!lock.held) return;
    const started = await writer(store, 'vm1/rp-1/disk0');
    expect(await ready(started, 1_500)).toBe('timeout');
    expect(existsSync(started.launch.pidFile)).toBe(false);
    // another collection meanwhile finds this one, not the waiting writer's registration, withdrawn as it waits
    expect(await collectGarbage(store, { key: null })).toMatchObject({ status: 'busy', collections: 1 });
    await lock.release();

    expect(await ready(started)).toBe('ready');
    const data = Buffer.concat(blocks(BLOCKS));
    await copyInto(started.port, data);
    await stop(started);
    expect((await readPoint(store, null, 'vm1/rp-1/disk0')).equals(data)).toBe(true);
    expect(await registerWriter(store, { waitMs: 0 }).then((r) => r.release())).toBeUndefined();
  }, 60_000);

  it('gives up waiting with a clear error once its wait is over', async () => {
    const store = await newStore();
    const lock = await lockForCollection(store);
    await expect(registerWriter(store, { waitMs: 200 })).rejects.toThrow(/was being garbage-collected \(by [^)]+\) for longer than 200 ms: no point can be written into it meanwhile/);
    expect(await namesIn(store, 'writers')).toEqual([]);
    if (lock.held) await lock.release();
  });

  it('removes the registrations and marks of dead processes of this host, and keeps those of another host', async () => {
    const store = await newStore();
    await writePoint(store, null, 'vm1/rp-1/disk0', Buffer.concat(blocks(BLOCKS)));
    await deletePoint(store, 'vm1/rp-1/disk0');

    // a writer SIGKILLed leaves its registration behind
    const killed = await writer(store, 'vm1/rp-2/disk0');
    expect(await ready(killed)).toBe('ready');
    killed.handle.signal('SIGKILL');
    await killed.handle.exited;
    expect(await namesIn(store, 'writers')).toHaveLength(1);
    // so does a collection SIGKILLed while it holds the store
    const script = `require(${JSON.stringify(join(COMPILED, 'store-lock.js'))}).lockForCollection(process.argv[1]).then((l) => { process.stdout.write(String(l.held)); setInterval(() => undefined, 1000); })`;
    const holder = spawn(process.execPath, ['-e', script, store], { stdio: ['ignore', 'pipe', 'inherit'] });
    expect(await new Promise((resolve) => holder.stdout.once('data', (d: Buffer) => resolve(d.toString())))).toBe('true');
    holder.kill('SIGKILL');
    await new Promise((resolve) => holder.once('exit', resolve));
    expect(await namesIn(store, 'gc')).toHaveLength(1);

    const registration = await registerWriter(store, { waitMs: 0 });
    expect(await namesIn(store, 'gc')).toEqual([]);
    await registration.release();
    expect(await collectGarbage(store, { key: null })).toMatchObject({ status: 'done', packsRemoved: 1 });
    expect(await namesIn(store, 'writers')).toEqual([]);

    // a registration of another host cannot be judged from here: it counts as live
    const other = join(store, 'writers', `${deadPid()}-12345-0123456789ab-00000000`);
    await fs.writeFile(other, JSON.stringify({ host: 'another-host.example', pid: 1, startTime: '12345' }));
    expect(await collectGarbage(store, { key: null })).toEqual({ status: 'busy', writers: 1, collections: 0 });
    // this host's name with another boot's tag: written before a reboot
    await fs.writeFile(other, JSON.stringify({ host: hostname(), pid: 1, startTime: '12345' }));
    expect(await collectGarbage(store, { key: null })).toMatchObject({ status: 'done' });
    expect(existsSync(other)).toBe(false);
  }, 60_000);

  it('leaves a store that opens and reads every point when SIGKILLed mid-sweep; the next collection finishes it', async () => {
    const store = await newStore();
    const kept = Buffer.concat(blocks(BLOCKS));
    await writePoint(store, null, 'vm1/keep/disk0', kept);
    for (let i = 1; i <= 4; i++) await writePoint(store, null, `vm2/rp-${i}/disk0`, Buffer.concat(blocks(8)));
    for (let i = 1; i <= 4; i++) await deletePoint(store, `vm2/rp-${i}/disk0`);
    const measured = await measureGarbage(store, { key: null });
    expect(measured).toMatchObject({ packsToRemove: 4, packsKept: 1 });

    // the third removal is the index of the second pack: the first pack is gone, the second without its index
    expect(await collectionKilled(store, 'onDelete', 3)).toBe('SIGKILL');
    expect(await packFiles(store)).toHaveLength(2 + 2 + 2 + 1);
    // an index is never left without its pack: a writer would deduplicate against chunks that are gone
    for (const id of await packIds(store)) expect(existsSync(join(store, 'packs', `${id}.pack`))).toBe(true);
    expect(await namesIn(store, 'gc')).toHaveLength(1);

    expect((await readPoint(store, null, 'vm1/keep/disk0')).equals(kept)).toBe(true);
    const rest = await measureGarbage(store, { key: null });
    expect(rest).toMatchObject({ packsToRemove: 3, packsKept: 1, liveChunks: BLOCKS });
    expect(await collectGarbage(store, { key: null })).toMatchObject({ status: 'done', packsRemoved: 3, bytesFreed: rest.bytesToFree });
    expect(await packIds(store)).toHaveLength(1);
    expect(await packFiles(store)).toHaveLength(2);
    expect(await namesIn(store, 'gc')).toEqual([]);
    expect((await readPoint(store, null, 'vm1/keep/disk0')).equals(kept)).toBe(true);
  }, 60_000);

  describe('repacking: a pack a quarter or more of whose bytes no point names is rewritten with its live chunks', () => {
    /** A full of 32 blocks (one pack), and a point sharing its last 20: once the full is deleted, 12 of 32 chunks are dead. */
    async function sharedPack(store: string, key: Buffer | null): Promise<{ pack: string; a: Buffer[]; b: Buffer }> {
      const a = blocks(BLOCKS);
      await writePoint(store, key, 'vm1/rp-a/disk0', Buffer.concat(a));
      const [pack] = await packIds(store);
      const b = Buffer.concat([...blocks(12), ...a.slice(12)]);
      await writePoint(store, key, 'vm1/rp-b/disk0', b);
      await deletePoint(store, 'vm1/rp-a/disk0');
      return { pack, a, b };
    }
    const digestsOf = (data: Buffer) => Array.from({ length: data.length / CHUNK_SIZE }, (_, i) => hash('sha256', data.subarray(i * CHUNK_SIZE, (i + 1) * CHUNK_SIZE), 'buffer'));

    it.each([
      ['a plain store', null],
      ['an encrypted store', randomBytes(32)],
    ])('frees the dead chunks of %s; points read on through the record of the move, a writer on top of them, and all goes once no point is left', async (_kind, key) => {
      const store = await newStore();
      const { pack, b } = await sharedPack(store, key);
      const measured = await measureGarbage(store, { key });
      expect(measured).toMatchObject({ packsToRemove: 0, packsToRepack: 1, packsKept: 2, liveChunks: 32, deadChunksKept: 0, deadBytesKept: 0 });
      expect(measured.bytesToFree).toBeGreaterThan(12 * CHUNK_SIZE);
      const before = await bytesOfFiles(store);

      const result = await collectGarbage(store, { key });
      expect(result).toMatchObject({ status: 'done', packsRemoved: 0, packsRepacked: 1 });
      if (result.status !== 'done') return;
      // what the figures say was freed is what the disk holds less: the dead records and the old index, less the record of the move
      expect(before - (await bytesOfFiles(store))).toBe(result.bytesFreed);
      expect(result.bytesFreed).toBeGreaterThan(12 * CHUNK_SIZE - 1024);
      const [moved] = (await packFiles(store)).filter((f) => f.endsWith('.moved'));
      expect(moved).toBe(`${pack}.moved`);
      for (const kind of ['pack', 'idx']) expect(existsSync(join(store, 'packs', `${pack}.${kind}`))).toBe(false);
      expect((await readPoint(store, key, 'vm1/rp-b/disk0')).equals(b)).toBe(true);
      expect((await readPointDigests(store, 'vm1/rp-b/disk0', key)).blocks).toEqual(digestsOf(b));
      // what an immutable repository would seal with the point: the record, and the packs (the new one and B's own) with their indexes
      expect(await packIds(store)).toHaveLength(2);
      const files = (await readPointPackFiles(store, 'vm1/rp-b/disk0', key)).map((f) => f.slice(join(store, 'packs').length + 1));
      expect(files.sort()).toEqual(await packFiles(store));
      // nothing more to do
      expect(await collectGarbage(store, { key })).toMatchObject({ status: 'done', packsRemoved: 0, packsRepacked: 0, bytesFreed: 0 });

      // an incremental on top: the blocks it keeps still name the repacked pack, whose record it keeps alive
      const writing = await ChunkStore.open(store, { key });
      const writer = await writing.writePoint(SIZE, 'vm1/rp-b/disk0');
      const changed = randomBytes(CHUNK_SIZE);
      await writer.write(30 * CHUNK_SIZE, changed);
      await writer.commit('vm1/rp-c/disk0');
      await writer.close();
      const c = Buffer.concat([b.subarray(0, 30 * CHUNK_SIZE), changed, b.subarray(31 * CHUNK_SIZE)]);
      await deletePoint(store, 'vm1/rp-b/disk0');
      expect(await collectGarbage(store, { key })).toMatchObject({ status: 'done' });
      expect(existsSync(join(store, 'packs', `${pack}.moved`))).toBe(true);
      expect((await readPoint(store, key, 'vm1/rp-c/disk0')).equals(c)).toBe(true);

      await deletePoint(store, 'vm1/rp-c/disk0');
      expect(await collectGarbage(store, { key })).toMatchObject({ status: 'done', packsKept: 0, liveChunks: 0 });
      expect(await packFiles(store)).toEqual([]);
    }, 60_000);

    it('follows a chain of repacks: a point still naming the first pack reads through both records', async () => {
      const store = await newStore();
      const { pack, b } = await sharedPack(store, null);
      expect(await collectGarbage(store, { key: null })).toMatchObject({ packsRepacked: 1 });
      // an incremental on B that rewrites blocks 12-23: it keeps naming the first pack for blocks 24-31
      const writing = await ChunkStore.open(store, { key: null });
      const writer = await writing.writePoint(SIZE, 'vm1/rp-b/disk0');
      const changed = Buffer.concat(blocks(12));
      await writer.write(12 * CHUNK_SIZE, changed);
      await writer.commit('vm1/rp-c/disk0');
      await writer.close();
      const c = Buffer.concat([b.subarray(0, 12 * CHUNK_SIZE), changed, b.subarray(24 * CHUNK_SIZE)]);
      await deletePoint(store, 'vm1/rp-b/disk0');
      // 12 of the 20 chunks the first repack kept are dead now: the new pack is repacked in turn
      expect(await collectGarbage(store, { key: null })).toMatchObject({ status: 'done', packsRepacked: 1 });
      expect((await packFiles(store)).filter((f) => f.endsWith('.moved'))).toHaveLength(2);
      expect((await readPoint(store, null, 'vm1/rp-c/disk0')).equals(c)).toBe(true);
      expect((await readPointDigests(store, 'vm1/rp-c/disk0', null)).blocks).toEqual(digestsOf(c));
      expect(await measureGarbage(store, { key: null })).toMatchObject({ packsToRemove: 0, packsToRepack: 0, liveChunks: 32, deadChunksKept: 0 });
      expect(existsSync(join(store, 'packs', `${pack}.moved`))).toBe(true);
      await deletePoint(store, 'vm1/rp-c/disk0');
      expect(await collectGarbage(store, { key: null })).toMatchObject({ status: 'done', packsKept: 0 });
      expect(await packFiles(store)).toEqual([]);
    }, 60_000);

    it('refuses records of moves that name each other in a circle, reading or collecting, instead of following them forever', async () => {
      const store = await newStore();
      const { pack } = await sharedPack(store, null);
      expect(await collectGarbage(store, { key: null })).toMatchObject({ packsRepacked: 1 });
      const moved = await fs.readFile(join(store, 'packs', `${pack}.moved`));
      const to = decodeMovedPack(openMeta(movedRecordName(pack), moved, null), 'record').to;
      // the pack it moved to claims to have moved back: what only a damaged (or forged plain) store holds
      await fs.writeFile(join(store, 'packs', `${to}.moved`), sealMeta(movedRecordName(to), encodeMovedPack({ to: pack, entries: new Int32Array(20).map((_, k) => k + 12) }), null));
      await expect(readPoint(store, null, 'vm1/rp-b/disk0')).rejects.toThrow(/moved in a circle/);
      await expect(readPointDigests(store, 'vm1/rp-b/disk0', null)).rejects.toThrow(/in a circle: the store is damaged/);
      await expect(collectGarbage(store, { key: null })).rejects.toThrow(/in a circle: nothing was collected/);
    }, 60_000);

    it("refuses, in an encrypted store, a record of a move put under another pack's name", async () => {
      const store = await newStore();
      const key = randomBytes(32);
      const { pack } = await sharedPack(store, key);
      expect(await collectGarbage(store, { key })).toMatchObject({ packsRepacked: 1 });
      // a pack the point also names (its own new chunks) is given the record made for the repacked one
      const { to } = decodeMovedPack(openMeta(movedRecordName(pack), await fs.readFile(join(store, 'packs', `${pack}.moved`)), deriveKeys(key).meta), 'record');
      const other = (await packIds(store)).find((id) => id !== to)!;
      await fs.copyFile(join(store, 'packs', `${pack}.moved`), join(store, 'packs', `${other}.moved`));
      await expect(readPoint(store, key, 'vm1/rp-b/disk0')).rejects.toThrow(`moved ${other} does not open with this repository's key`);
      await expect(collectGarbage(store, { key })).rejects.toThrow(/the record of repacked pack .* cannot be read .*: nothing was collected/);
    }, 60_000);

    it('lets a reader that read the index before the repack read on where the chunks went', async () => {
      const store = await newStore();
      const { b } = await sharedPack(store, null);
      const view = await (await ChunkStore.open(store, { key: null })).openPoint('vm1/rp-b/disk0');
      try {
        expect(await collectGarbage(store, { key: null })).toMatchObject({ status: 'done', packsRepacked: 1 });
        expect((await view.read(0, view.size)).equals(b)).toBe(true);
      } finally {
        await view.close();
      }
    }, 60_000);

    it('starts no repack once its budget is spent, and leaves the pack to the next collection', async () => {
      const store = await newStore();
      const { pack, b } = await sharedPack(store, null);
      const before = await bytesOfFiles(store);
      expect(await collectGarbage(store, { key: null, repackBudgetMs: 0 })).toMatchObject({ status: 'done', packsRepacked: 0, bytesFreed: 0 });
      expect(await bytesOfFiles(store)).toBe(before);
      expect(existsSync(join(store, 'packs', `${pack}.pack`))).toBe(true);
      expect(await measureGarbage(store, { key: null })).toMatchObject({ packsToRepack: 1 });
      expect(await collectGarbage(store, { key: null })).toMatchObject({ status: 'done', packsRepacked: 1 });
      expect((await readPoint(store, null, 'vm1/rp-b/disk0')).equals(b)).toBe(true);
    }, 60_000);

    it('keeps partly dead packs whole when asked not to repack (an immutable repository)', async () => {
      const store = await newStore();
      const { pack } = await sharedPack(store, null);
      expect(await measureGarbage(store, { key: null, repack: false })).toMatchObject({ packsToRepack: 0, bytesToFree: 0, deadChunksKept: 12 });
      expect(await collectGarbage(store, { key: null, repack: false })).toMatchObject({ status: 'done', packsRepacked: 0, bytesFreed: 0, deadChunksKept: 12 });
      expect(existsSync(join(store, 'packs', `${pack}.pack`))).toBe(true);
    }, 60_000);

    it.each([
      ['before the old index is removed', 'release' as const, 1],
      ['between removing the old index and the old pack', 'onDelete' as const, 1],
    ])('leaves a store whose points read, and whose writers see only live chunks, when SIGKILLed %s; the next collection finishes', async (_when, hook, n) => {
      const store = await newStore();
      const { pack, a, b } = await sharedPack(store, null);
      expect(await collectionKilled(store, hook, n)).toBe('SIGKILL');
      expect(existsSync(join(store, 'packs', `${pack}.moved`))).toBe(true);
      expect((await readPoint(store, null, 'vm1/rp-b/disk0')).equals(b)).toBe(true);
      // a writer opening the store now no longer knows the dead chunks of the old pack (the record is read before its
      // index): one is stored anew, where its old copy would have been named and then removed by the next collection
      const writing = await ChunkStore.open(store, { key: null });
      await writing.put(Buffer.from(a[0]));
      expect(writing.stats.chunks).toBe(1);
      await writing.flush();

      // what the repack left, and the writer's pack, which no point names
      expect(await measureGarbage(store, { key: null })).toMatchObject({ packsToRemove: 2, packsToRepack: 0 });
      expect(await collectGarbage(store, { key: null })).toMatchObject({ status: 'done', packsRemoved: 2 });
      expect((await packFiles(store)).filter((f) => f.startsWith(pack))).toEqual([`${pack}.moved`]);
      expect((await readPoint(store, null, 'vm1/rp-b/disk0')).equals(b)).toBe(true);
    }, 60_000);
  });
});
