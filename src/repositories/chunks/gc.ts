import { Dirent, promises as fs } from 'node:fs';
import { join } from 'node:path';
import { performance } from 'node:perf_hooks';
import { removeDurably, removeStaleTemps } from '../qcow2/durable-fs';
import { deriveKeys, openMeta } from './chunk-format';
import { decodePackIndex, decodePointIndex, PACK_ID, PackEntry } from './indexes';
import { lockForCollection } from './store-lock';

/*
 * Garbage collection of a chunk store (docs/design/storage.md): mark every chunk a committed point's index names,
 * sweep the packs none of whose chunks is named. A pack is freed whole or not at all: a point names a block as
 * (pack, entry), and point indexes are written once, so a live chunk cannot move to a new pack.
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
}

/** What a store holds apart from its live chunks: what operators see as garbage awaiting collection. */
export interface GarbageMeasure {
  /** Packs (with their indexes, and packs left without one) no point names a chunk of, and their files' bytes. */
  packsToRemove: number;
  bytesToFree: number;
  /** Packs some point names a chunk of. */
  packsKept: number;
  /** Entries of kept packs that some point names, and their stored bytes. */
  liveChunks: number;
  liveBytes: number;
  /** Entries of kept packs that no point names (freed only when their whole pack is), and their stored bytes. */
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

interface Marked {
  measure: GarbageMeasure;
  /** Files to remove, in order: an index before its pack. */
  garbage: string[];
  /** Directories whose temp files of dead processes are litter. */
  dirs: string[];
}

/**
 * What a collection would free now and what it would keep dead: the mark alone, which neither locks nor removes. With
 * writers at work it may count a pack being published (linked, its index not yet written) as garbage.
 */
export async function measureGarbage(storeDir: string, options: { key: Buffer | null }): Promise<GarbageMeasure> {
  return (await mark(storeDir, options.key)).measure;
}

export async function collectGarbage(storeDir: string, options: GcOptions): Promise<GcResult> {
  const started = performance.now();
  const lock = await lockForCollection(storeDir);
  if (!lock.held) return { status: 'busy', writers: lock.writers.length, collections: lock.collections.length };
  try {
    const { measure, garbage, dirs } = await mark(storeDir, options.key);
    for (const dir of dirs) await removeStaleTemps(dir);
    for (const file of garbage) {
      await options.release?.(file);
      await removeDurably(file);
      await options.onDelete?.(file);
    }
    const { packsToRemove, bytesToFree, ...kept } = measure;
    return { status: 'done', packsRemoved: packsToRemove, bytesFreed: bytesToFree, ...kept, durationMs: Math.round(performance.now() - started) };
  } finally {
    await lock.release();
  }
}

async function mark(storeDir: string, key: Buffer | null): Promise<Marked> {
  const metaKey = key ? deriveKeys(key).meta : null;
  const packsDir = join(storeDir, 'packs');
  const pointsDir = join(storeDir, 'points');
  // per pack, the entries some point names and the plaintext length of each (a disk's last block may be short)
  const named = new Map<string, Map<number, number>>();
  const dirs = [packsDir];
  let pointDisks = 0;
  let logicalBytes = 0;
  let storedBytes = 0;
  for (const { name, file, dir } of await pointIndexes(pointsDir)) {
    if (!dirs.includes(dir)) dirs.push(dir);
    const bytes = await fs.readFile(file).catch((error: NodeJS.ErrnoException) => (error.code === 'ENOENT' ? null : Promise.reject(error)));
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
      (named.get(b.packId) ?? named.set(b.packId, new Map()).get(b.packId)!).set(b.entry, length);
    });
  }

  const measure: GarbageMeasure = { packsToRemove: 0, bytesToFree: 0, packsKept: 0, liveChunks: 0, liveBytes: 0, deadChunksKept: 0, deadBytesKept: 0, pointDisks, logicalBytes, uniqueBytes: 0, storedBytes };
  const garbage: string[] = [];
  const files = new Set(await fs.readdir(packsDir).catch((error: NodeJS.ErrnoException) => (error.code === 'ENOENT' ? [] : Promise.reject(error))));
  for (const name of [...files].sort()) {
    const packId = name.replace(/\.(pack|idx)$/, '');
    if (!PACK_ID.test(packId) || (name.endsWith('.pack') && files.has(`${packId}.idx`))) continue;
    const pack = join(packsDir, `${packId}.pack`);
    const live = named.get(packId);
    if (name.endsWith('.pack')) {
      // published but never indexed (its writer died in between): no point can name it, unless the store is damaged
      if (live) measure.packsKept++;
      else await condemn(measure, garbage, [pack]);
      measure.storedBytes += (await fs.stat(pack).catch(() => null))?.size ?? 0;
      continue;
    }
    const index = join(packsDir, name);
    const entries = await readPackIndex(index, packId, metaKey);
    if (!entries) continue;
    for (const file of [index, pack]) measure.storedBytes += (await fs.stat(file).catch(() => null))?.size ?? 0;
    if (!live) {
      await condemn(measure, garbage, [index, ...(files.has(`${packId}.pack`) ? [pack] : [])]);
      continue;
    }
    measure.packsKept++;
    entries.forEach((e, entry) => {
      if (live.has(entry)) {
        measure.liveChunks++;
        measure.liveBytes += e.length;
        measure.uniqueBytes += live.get(entry)!;
      } else {
        measure.deadChunksKept++;
        measure.deadBytesKept += e.length;
      }
    });
  }
  return { measure, garbage, dirs };
}

/** A pack's entries, or null for an index removed since the listing (by another collection). */
async function readPackIndex(file: string, packId: string, metaKey: Buffer | null): Promise<PackEntry[] | null> {
  const bytes = await fs.readFile(file).catch((error: NodeJS.ErrnoException) => (error.code === 'ENOENT' ? null : Promise.reject(error)));
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

/** Every committed point's index, `points/<vm>/<point>/<disk>.idx`, with its name and directory. */
async function pointIndexes(pointsDir: string): Promise<{ name: string; file: string; dir: string }[]> {
  const found: { name: string; file: string; dir: string }[] = [];
  for (const vm of await subdirectories(pointsDir)) {
    for (const point of await subdirectories(join(pointsDir, vm))) {
      const dir = join(pointsDir, vm, point);
      for (const entry of await entriesOf(dir)) {
        if (entry.isFile() && entry.name.endsWith('.idx') && !entry.name.startsWith('.')) found.push({ name: `${vm}/${point}/${entry.name.slice(0, -'.idx'.length)}`, file: join(dir, entry.name), dir });
      }
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
