import { spawn, spawnSync } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { existsSync, promises as fs, readFileSync } from 'node:fs';
import { hostname } from 'node:os';
import { dirname, join } from 'node:path';
import { chunkNbdProcesses } from '../../../test/support/chunk-nbd-processes';
import { freePort } from '../../../test/support/processes';
import type { ReadableDisk } from '../../nbd-protocol/nbd-server';
import { ChildProcessHandle } from '../../process/child-process';
import { runProcess } from '../../process/run-process';
import { QemuNbdLaunch, waitUntilServing } from '../../qemu/qemu-nbd-launcher';
import { CHUNK_SIZE } from './chunk-format';
import { CHUNK_NBD_MAIN } from './chunk-nbd/chunk-nbd-args';
import { removeEmptyPointDir } from './chunk-points';
import { ChunkStore, storeDisk } from './chunk-store';
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
      packsToRemove: 0, bytesToFree: 0, packsKept: 4, liveChunks: 32 + 4 + 8 + 32, liveBytes: expect.any(Number), deadChunksKept: 0, deadBytesKept: 0,
      pointDisks: 4, logicalBytes: (32 + 32 + 16 + 32) * CHUNK_SIZE, uniqueBytes: (32 + 4 + 8 + 32) * CHUNK_SIZE, storedBytes: await bytesOfFiles(store),
    });

    await deletePoint(store, 'vm1/rp-a/disk0');
    await deletePoint(store, 'vm1/rp-d/disk0');
    // litter of dead writers: a pack published without its index, and a temp pack
    const orphan = join(store, 'packs', `${randomBytes(8).toString('hex')}.pack`);
    await fs.writeFile(orphan, randomBytes(1000));
    const temp = join(store, 'packs', `.${randomBytes(8).toString('hex')}.pack.tmp-${deadPid()}-0badf00d`);
    await fs.writeFile(temp, randomBytes(1000));
    const dFiles = (await Promise.all(['pack', 'idx'].map((kind) => fs.stat(join(store, 'packs', `${packD}.${kind}`))))).reduce((sum, s) => sum + s.size, 0);

    const measured = await measureGarbage(store, { key: null });
    // A's pack stays for B and C; its first four chunks, now B's own, are dead but kept with it
    expect(measured).toEqual({
      packsToRemove: 2, bytesToFree: dFiles + 1000, packsKept: 3, liveChunks: 28 + 4 + 8, liveBytes: expect.any(Number), deadChunksKept: 4, deadBytesKept: expect.any(Number),
      pointDisks: 2, logicalBytes: (32 + 16) * CHUNK_SIZE, uniqueBytes: 40 * CHUNK_SIZE, storedBytes: await bytesOfFiles(store),
    });
    expect(measured.deadBytesKept).toBeGreaterThan(4 * CHUNK_SIZE);
    const result = await collectGarbage(store, { key: null });
    const { packsToRemove, bytesToFree, ...kept } = measured;
    expect(result).toEqual({ status: 'done', packsRemoved: packsToRemove, bytesFreed: bytesToFree, ...kept, durationMs: expect.any(Number) });
    expect(await packIds(store)).toHaveLength(3);
    expect(await packIds(store)).toContain(packA);
    for (const gone of [join(store, 'packs', `${packD}.pack`), join(store, 'packs', `${packD}.idx`), orphan, temp]) expect(existsSync(gone)).toBe(false);
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
    const script = `let n = 0; require(${JSON.stringify(join(COMPILED, 'gc.js'))}).collectGarbage(process.argv[1], { key: null, onDelete: () => { if (++n === 3) process.kill(process.pid, 'SIGKILL'); } })`;
    const { signal } = await new Promise<{ signal: string | null }>((resolve) => spawn(process.execPath, ['-e', script, store], { stdio: 'inherit' }).once('exit', (_code, s) => resolve({ signal: s })));
    expect(signal).toBe('SIGKILL');
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
});
