import { randomBytes } from 'node:crypto';
import { Dirent, promises as fs } from 'node:fs';
import { join } from 'node:path';
import { performance } from 'node:perf_hooks';
import { createFileAtomic, readFileIfPresent, removeDurably, removeStaleTemps } from '../qcow2/durable-fs';
import { deriveKeys, openMeta, sealMeta } from './chunk-format';
import { decodePackIndex, decodePointIndex, encodePackIndex, PACK_ID, PackEntry } from './indexes';
import { encodeMovedPack, MovedPack, movedRecordName, readMovedPack } from './moved-packs';
import { lockForCollection } from './store-lock';

/*
 * Garbage collection of a chunk store (docs/design/storage.md): mark every chunk a committed point's index names,
 * sweep the packs none of whose chunks is named, and repack those a quarter or more of whose bytes no point names:
 * their live chunks are copied into a new pack, and a record `<pack>.moved` says where each entry went, since a
 * point names a block as (pack, entry) and point indexes are written once. The record is published before the old
 * pack's index and pack are removed; it stays while a point names the old pack.
 *
 * It runs with no writer at work (store-lock.ts): a writer deduplicates against every pack it found at its start, so a
 * pack it may still name must not go. Readers need no such care: they read committed points, whose packs are live.
 * Nothing is freed on a doubt: a point index that does not open stops the collection before the sweep. Each removal
 * is durable on its own, a pack's index before its pack, so a collection killed at any moment leaves packs without
 * an index (skipped by the store's open, removed by the next collection) and never a point without its chunks.
 */

export class GcError extends Error {}

export interface GcOptions {
  /** The repository key of an encrypted store; null for a plain one. */
  key: Buffer | null;
  /** Called before each file the sweep removes: an immutable repository clears the attribute of a pack no point names any more. */
  release?: (file: string) => Promise<void>;
  /** Called after each file the sweep removed, before the next removal: where a test stops a collection midway. */
  onDelete?: (file: string) => void | Promise<void>;
  /**
   * Whether packs that are partly garbage are repacked (default true). Not in an immutable repository: a pack holding
   * a chunk of a sealed point is sealed with it and cannot be removed.
   */
  repack?: boolean;
  /**
   * No repack starts once repacking has taken this long (default REPACK_BUDGET_MS); the rest waits for the next
   * collection. Writers wait for a collection (store-lock.ts), so one that rewrote every pack of a large store at
   * once would hold backups up for as long.
   */
  repackBudgetMs?: number;
}

/** How long one collection goes on starting repacks: a writer waits for a collection up to DEFAULT_WRITER_WAIT_MS. */
export const REPACK_BUDGET_MS = 2 * 60 * 1000;

/** A pack is repacked once this share of its bytes is chunks no point names. */
export const REPACK_DEAD_SHARE = 0.25;

/** What a store holds apart from its live chunks: what operators see as garbage awaiting collection. */
export interface GarbageMeasure {
  /**
   * Packs (with their indexes, and packs left without one) no point names a chunk of, and packs to repack; the bytes
   * a collection frees: the files removed, and the chunks no point names in the packs it repacks.
   */
  packsToRemove: number;
  packsToRepack: number;
  bytesToFree: number;
  /** Packs some point names a chunk of. */
  packsKept: number;
  /** Entries of kept packs that some point names, and their stored bytes. */
  liveChunks: number;
  liveBytes: number;
  /** Entries of kept packs that no point names and that no repack frees (too few in their pack), and their stored bytes. */
  deadChunksKept: number;
  deadBytesKept: number;
  /** Committed points' disks, and the bytes of their blocks that are not zeros, each point counted whole: what is protected. */
  pointDisks: number;
  logicalBytes: number;
  /** The plaintext bytes of the live chunks, each counted once: what is protected after deduplication, before compression. */
  uniqueBytes: number;
  /** Every file of the store (packs, their indexes, point indexes): what the repository's disk holds for it. */
  storedBytes: number;
}

export type GcResult =
  | {
      status: 'done';
      packsRemoved: number;
      packsRepacked: number;
      bytesFreed: number;
      packsKept: number;
      liveChunks: number;
      liveBytes: number;
      deadChunksKept: number;
      deadBytesKept: number;
      durationMs: number;
    }
  /** Nothing was touched: writers (or another collection) were at work, by their count. */
  | { status: 'busy'; writers: number; collections: number };

/** A pack to repack: its entries, and those some point names. */
interface Repack {
  packId: string;
  entries: PackEntry[];
  live: ReadonlySet<number>;
  /** The stored bytes of its entries no point names: what the mark counts as freed by the repack. */
  deadBytes: number;
}

interface Marked {
  measure: GarbageMeasure;
  /** Files to remove, in order: an index before its pack. */
  garbage: string[];
  repacks: Repack[];
  /** Directories whose temp files of dead processes are litter. */
  dirs: string[];
  /** Every point's directory: one left empty once its litter is gone is removed, as a deleted point's is. */
  pointDirs: string[];
}

/**
 * What a collection would free now and what it would keep dead: the mark alone, which neither locks nor removes. With
 * writers at work it may count a pack being published (linked, its index not yet written) as garbage.
 */
export async function measureGarbage(storeDir: string, options: { key: Buffer | null; repack?: boolean }): Promise<GarbageMeasure> {
  return (await mark(storeDir, options.key, options.repack ?? true)).measure;
}

export async function collectGarbage(storeDir: string, options: GcOptions): Promise<GcResult> {
  const started = performance.now();
  const lock = await lockForCollection(storeDir);
  if (!lock.held) return { status: 'busy', writers: lock.writers.length, collections: lock.collections.length };
  try {
    const metaKey = options.key ? deriveKeys(options.key).meta : null;
    const { measure, garbage, dirs, pointDirs, repacks } = await mark(storeDir, options.key, options.repack ?? true);
    for (const dir of dirs) await removeStaleTemps(dir);
    // a writer killed in its commit leaves its point's directory holding only its temp index; no writer runs now
    for (const dir of pointDirs) await fs.rmdir(dir).catch((error: NodeJS.ErrnoException) => (error.code === 'ENOTEMPTY' || error.code === 'ENOENT' ? undefined : Promise.reject(error)));
    const remove = async (file: string) => {
      await options.release?.(file);
      await removeDurably(file);
      await options.onDelete?.(file);
    };
    for (const file of garbage) await remove(file);
    // what the sweep freed; then each repack's own figure, for the repacks the budget lets start
    let bytesFreed = measure.bytesToFree - repacks.reduce((n, r) => n + r.deadBytes, 0);
    let packsRepacked = 0;
    const repacking = performance.now();
    for (const candidate of repacks) {
      if (performance.now() - repacking >= (options.repackBudgetMs ?? REPACK_BUDGET_MS)) break;
      bytesFreed += await repack(join(storeDir, 'packs'), candidate, metaKey, remove);
      packsRepacked++;
    }
    const { packsToRemove, packsToRepack: _, bytesToFree: __, ...kept } = measure;
    return { status: 'done', packsRemoved: packsToRemove, packsRepacked, bytesFreed, ...kept, durationMs: Math.round(performance.now() - started) };
  } finally {
    await lock.release();
  }
}

/**
 * Copies a pack's live records as they are (each is sealed under its chunk's id alone, wherever it lies) into a new
 * pack, publishes its index and then the record of the move, and removes the old index and pack. Killed before the
 * record, the new pack is garbage the next collection removes; after it, the old files are. The bytes it freed: the
 * old pack and index, less the new pack, its index and the record.
 */
async function repack(packsDir: string, { packId, entries, live }: Repack, metaKey: Buffer | null, remove: (file: string) => Promise<void>): Promise<number> {
  const pack = join(packsDir, `${packId}.pack`);
  const index = join(packsDir, `${packId}.idx`);
  const bytes = await fs.readFile(pack);
  const to = randomBytes(8).toString('hex');
  const moved: MovedPack = { to, entries: new Int32Array(entries.length).fill(-1) };
  const records: Buffer[] = [];
  const kept: PackEntry[] = [];
  let offset = 0;
  entries.forEach((e, k) => {
    if (!live.has(k)) return;
    if (e.offset + e.length > bytes.length) throw new GcError(`pack ${packId} ends inside its entry ${k}: nothing of it was repacked`);
    moved.entries[k] = kept.length;
    kept.push({ digest: e.digest, offset, length: e.length });
    records.push(bytes.subarray(e.offset, e.offset + e.length));
    offset += e.length;
  });
  const before = bytes.length + (await fs.stat(index)).size;
  const written = [Buffer.concat(records), sealMeta(`pack ${to}`, encodePackIndex(kept), metaKey), sealMeta(movedRecordName(packId), encodeMovedPack(moved), metaKey)];
  await createFileAtomic(join(packsDir, `${to}.pack`), written[0]);
  await createFileAtomic(join(packsDir, `${to}.idx`), written[1]);
  await createFileAtomic(join(packsDir, `${packId}.moved`), written[2]);
  await remove(index);
  await remove(pack);
  return before - written.reduce((n, w) => n + w.length, 0);
}

async function mark(storeDir: string, key: Buffer | null, repacking: boolean): Promise<Marked> {
  const metaKey = key ? deriveKeys(key).meta : null;
  const packsDir = join(storeDir, 'packs');
  const pointsDir = join(storeDir, 'points');
  // per pack, the entries some point names and the plaintext length of each (a disk's last block may be short)
  const named = new Map<string, Map<number, number>>();
  const dirs = [packsDir];
  let pointDisks = 0;
  let logicalBytes = 0;
  let storedBytes = 0;
  const points = await pointDirectories(pointsDir);
  const pointDirs = points.map((p) => p.dir);
  dirs.push(...pointDirs);
  for (const { name, file } of await pointIndexes(points)) {
    const bytes = await readFileIfPresent(file);
    // a point deleted since the listing names nothing any more
    if (!bytes) continue;
    let index;
    try {
      index = decodePointIndex(openMeta(`point ${name}`, bytes, metaKey), `point ${name}`);
    } catch (error) {
      throw new GcError(`the point index ${file} cannot be read (${(error as Error).message}): nothing was collected, since the chunks it names are unknown`);
    }
    pointDisks++;
    storedBytes += bytes.length;
    index.blocks.forEach((b, i) => {
      if (!b) return;
      const length = Math.min(index.chunkSize, index.size - i * index.chunkSize);
      logicalBytes += length;
      namedIn(named, b.packId).set(b.entry, length);
    });
  }

  const files = new Set(await fs.readdir(packsDir).catch((error: NodeJS.ErrnoException) => (error.code === 'ENOENT' ? [] : Promise.reject(error))));
  const packIds = [...new Set([...files].map((name) => name.replace(/\.(pack|idx|moved)$/, '')))].filter((id) => PACK_ID.test(id)).sort();
  const moved = await movedPacks(storeDir, packIds.filter((id) => files.has(`${id}.moved`)), metaKey);
  followMoved(named, moved);

  const measure: GarbageMeasure = { packsToRemove: 0, packsToRepack: 0, bytesToFree: 0, packsKept: 0, liveChunks: 0, liveBytes: 0, deadChunksKept: 0, deadBytesKept: 0, pointDisks, logicalBytes, uniqueBytes: 0, storedBytes };
  const garbage: string[] = [];
  const repacks: Repack[] = [];
  const size = async (file: string) => (await fs.stat(file).catch(() => null))?.size ?? 0;
  for (const packId of packIds) {
    const file = (kind: 'pack' | 'idx' | 'moved') => join(packsDir, `${packId}.${kind}`);
    const present = (['idx', 'pack'] as const).filter((kind) => files.has(`${packId}.${kind}`)).map(file);
    const live = named.get(packId);
    if (moved.has(packId)) {
      // a repacked pack: its record stays while a point names it; files a repack killed midway left are garbage
      for (const f of present) measure.storedBytes += await size(f);
      if (present.length) await condemn(measure, garbage, present);
      if (live) measure.storedBytes += await size(file('moved'));
      else await condemn(measure, garbage, [file('moved')]);
      continue;
    }
    if (!files.has(`${packId}.idx`)) {
      if (!files.has(`${packId}.pack`)) continue;
      // published but never indexed (its writer died in between): no point can name it, unless the store is damaged
      if (live) measure.packsKept++;
      else await condemn(measure, garbage, [file('pack')]);
      measure.storedBytes += await size(file('pack'));
      continue;
    }
    const entries = await readPackIndex(file('idx'), packId, metaKey);
    if (!entries) continue;
    for (const f of present) measure.storedBytes += await size(f);
    if (!live) {
      await condemn(measure, garbage, present);
      continue;
    }
    measure.packsKept++;
    let dead = 0;
    let deadBytes = 0;
    let packBytes = 0;
    entries.forEach((e, entry) => {
      packBytes += e.length;
      if (live.has(entry)) {
        measure.liveChunks++;
        measure.liveBytes += e.length;
        measure.uniqueBytes += live.get(entry)!;
      } else {
        dead++;
        deadBytes += e.length;
      }
    });
    if (repacking && dead && deadBytes >= packBytes * REPACK_DEAD_SHARE && files.has(`${packId}.pack`)) {
      measure.packsToRepack++;
      measure.bytesToFree += deadBytes;
      repacks.push({ packId, entries, live: new Set(live.keys()), deadBytes });
    } else {
      measure.deadChunksKept += dead;
      measure.deadBytesKept += deadBytes;
    }
  }
  return { measure, garbage, dirs, pointDirs, repacks };
}

function namedIn(named: Map<string, Map<number, number>>, packId: string): Map<number, number> {
  let entries = named.get(packId);
  if (!entries) named.set(packId, (entries = new Map()));
  return entries;
}

async function movedPacks(storeDir: string, packIds: readonly string[], metaKey: Buffer | null): Promise<Map<string, MovedPack>> {
  const moved = new Map<string, MovedPack>();
  for (const packId of packIds) {
    try {
      const record = await readMovedPack(storeDir, packId, metaKey);
      if (record) moved.set(packId, record);
    } catch (error) {
      throw new GcError(`the record of repacked pack ${packId} cannot be read (${(error as Error).message}): nothing was collected, since the chunks it moved are unknown`);
    }
  }
  return moved;
}

/** What points name in a repacked pack is live where it went, through every later repack of that pack. */
function followMoved(named: Map<string, Map<number, number>>, moved: ReadonlyMap<string, MovedPack>): void {
  const pending = [...named.keys()].filter((packId) => moved.has(packId));
  for (let steps = 0; pending.length; steps++) {
    if (steps > moved.size * 64) throw new GcError('repacked packs name each other in a circle: nothing was collected');
    const packId = pending.shift()!;
    const { to, entries } = moved.get(packId)!;
    const target = namedIn(named, to);
    for (const [entry, length] of named.get(packId)!) {
      const at = entries[entry] ?? -1;
      if (at < 0) throw new GcError(`a point names entry ${entry} of pack ${packId}, which its repack dropped: nothing was collected, the store is damaged`);
      target.set(at, length);
    }
    if (moved.has(to)) pending.push(to);
  }
}

/** A pack's entries, or null for an index removed since the listing (by another collection). */
async function readPackIndex(file: string, packId: string, metaKey: Buffer | null): Promise<PackEntry[] | null> {
  const bytes = await readFileIfPresent(file);
  if (!bytes) return null;
  try {
    return decodePackIndex(openMeta(`pack ${packId}`, bytes, metaKey), `pack ${packId}`);
  } catch (error) {
    throw new GcError(`the pack index ${file} cannot be read (${(error as Error).message}): nothing was collected`);
  }
}

async function condemn(measure: GarbageMeasure, garbage: string[], files: string[]): Promise<void> {
  measure.packsToRemove++;
  for (const file of files) {
    const stat = await fs.stat(file).catch(() => null);
    if (!stat) continue;
    measure.bytesToFree += stat.size;
    garbage.push(file);
  }
}

/** Every point's directory, `points/<vm>/<point>/`, whether or not it holds a committed index, with its `<vm>/<point>`. */
async function pointDirectories(pointsDir: string): Promise<{ dir: string; point: string }[]> {
  const found: { dir: string; point: string }[] = [];
  for (const vm of await subdirectories(pointsDir)) for (const point of await subdirectories(join(pointsDir, vm))) found.push({ dir: join(pointsDir, vm, point), point: `${vm}/${point}` });
  return found;
}

/** Every committed point's index in those directories, `<vm>/<point>/<disk>.idx`, with its name. */
async function pointIndexes(points: { dir: string; point: string }[]): Promise<{ name: string; file: string }[]> {
  const found: { name: string; file: string }[] = [];
  for (const { dir, point } of points) {
    for (const entry of await entriesOf(dir)) {
      if (entry.isFile() && entry.name.endsWith('.idx') && !entry.name.startsWith('.')) found.push({ name: `${point}/${entry.name.slice(0, -'.idx'.length)}`, file: join(dir, entry.name) });
    }
  }
  return found;
}

async function subdirectories(dir: string): Promise<string[]> {
  return (await entriesOf(dir)).filter((e) => e.isDirectory() && !e.name.startsWith('.')).map((e) => e.name);
}

/** A directory's entries; none for one removed since its parent was listed (a point deleted meanwhile), any other error stands. */
function entriesOf(dir: string): Promise<Dirent[]> {
  return fs.readdir(dir, { withFileTypes: true }).catch((error: NodeJS.ErrnoException) => (error.code === 'ENOENT' ? [] : Promise.reject(error)));
}
