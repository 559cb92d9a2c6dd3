import { readFile } from 'node:fs/promises';
import { imageKeys } from '../../qemu/image-keys';
import { buildSocketExportArgs, SocketExportSpec } from '../../qemu/qemu-nbd-args';
import { chunkPointServerArgs } from './chunk-nbd/chunk-point-args';
import { chunkPointOf } from './chunk-points';
import { ChunkWorkers } from './chunk-workers';
import { BlockDigests, DigestRun } from '../../wire/block-digests';
import { ChunkPointView, ChunkStore, readPointDigests, readPointIndex, readPointPackFiles } from './chunk-store';

/** The key of the chunk store `path` is in: its repository's key file's bytes, or null for a store in the clear. */
export async function chunkStoreKey(path: string): Promise<Buffer | null> {
  const keyFile = imageKeys.keyForNewFile(path);
  return keyFile ? readFile(keyFile) : null;
}

/**
 * How the hub's readers of a point (downloads, restore mounts, verify) serve its disk on a Unix socket: qemu-nbd for
 * a qcow2 file (with its backing chain), the chunk store's own server for a chunk point's index. Either is launched
 * and stopped the same way (src/qemu/qemu-nbd-launcher.ts): a pid file once it serves, SIGTERM to end it.
 */
export function socketExportLaunch(spec: SocketExportSpec, pidFile: string): { binary?: string; args: string[] } {
  if (chunkPointOf(spec.file) && (spec.writable || spec.bitmap !== undefined)) throw new Error(`chunk point ${spec.file} is served read-only and without dirty bitmaps`);
  const args = chunkPointServerArgs(spec.file, { listen: { socket: spec.socket }, exportName: spec.exportName }, pidFile);
  return args ? { binary: process.execPath, args } : { args: buildSocketExportArgs(spec, pidFile) };
}

/**
 * The chunk store's server writing a new point `file` on a Unix socket (a sync's copy), started from `create.base` (a
 * point's index file, or null for zeros) and committed when it is stopped.
 */
export function socketWriterLaunch(file: string, create: { size: number; base: string | null }, socket: string, exportName: string, pidFile: string): { binary: string; args: string[] } {
  const args = chunkPointServerArgs(file, { listen: { socket }, exportName, create }, pidFile);
  if (!args) throw new Error(`${file} is not a chunk point's index`);
  return { binary: process.execPath, args };
}

/**
 * The threads this process's readers of chunk points (downloads, verify) open chunks on, one per core but one: a
 * download's main thread sends while they decrypt and decompress, straight into its buffers. They start once a read
 * has gone past ChunkWorkers' threshold on the calling thread, and idle they keep nothing alive.
 */
let readerThreads: ChunkWorkers | undefined;

/** A chunk point's disk read in this process (no server between): what verify reads, or null for a file that is no chunk point. */
export async function openChunkPoint(file: string): Promise<ChunkPointView | null> {
  const point = chunkPointOf(file);
  if (!point) return null;
  return (await ChunkStore.open(point.store, { key: await chunkStoreKey(file), workers: (readerThreads ??= new ChunkWorkers()) })).openPoint(point.name);
}

/**
 * The digest of every block of a chunk point's disk, zero runs where it holds zeros: a chunk is one digest block
 * named by the SHA-256 of its bytes, so the index already holds what an agent's copy would hash. Null for a file
 * that is no chunk point.
 */
export async function chunkPointDigests(file: string): Promise<BlockDigests | null> {
  const point = chunkPointOf(file);
  if (!point) return null;
  const { size, blocks } = await readPointDigests(point.store, point.name, await chunkStoreKey(file));
  const runs: DigestRun[] = [];
  let data: Buffer[] = [];
  blocks.forEach((digest, i) => {
    const last = runs.at(-1);
    if (last && last.zero === !digest) last.count++;
    else {
      if (last && !last.zero) last.digests = Buffer.concat(data);
      data = [];
      runs.push({ first: i, count: 1, zero: !digest, digests: null });
    }
    if (digest) data.push(digest);
  });
  const last = runs.at(-1);
  if (last && !last.zero) last.digests = Buffer.concat(data);
  return new BlockDigests(size, runs);
}

/**
 * The files of the packs a chunk point names (each pack and its index, and the records of a repacked one): what an
 * immutable repository seals with the point, since the point reads through them. Null for a file that is no chunk point.
 */
export async function chunkPackFiles(file: string): Promise<string[] | null> {
  const point = chunkPointOf(file);
  if (!point) return null;
  return readPointPackFiles(point.store, point.name, await chunkStoreKey(file));
}

/**
 * What a qcow2 copy of a chunk point's disk takes, as `qemu-img measure` tells of a qcow2 point: its blocks that
 * are not zeros, its L2 tables (8 bytes per 64 KiB cluster) and refcounts, and a header's worth. Null for a file that
 * is no chunk point.
 */
export async function measureChunkPoint(file: string): Promise<number | null> {
  const point = chunkPointOf(file);
  if (!point) return null;
  const index = await readPointIndex(point.store, point.name, await chunkStoreKey(file));
  return index.blocks.filter(Boolean).length * index.chunkSize + 2 * Math.ceil(index.size / 8192) + 1024 * 1024;
}

/**
 * What a verify checks of a chunk point besides its blocks' digests: its index opens (with the repository's key, in
 * an encrypted repository) and is of the size the point recorded. The chunks it names are read by the content check
 * that follows, which opens the store.
 */
export async function chunkPointProblems(file: string, virtualSize: number): Promise<string[]> {
  const point = chunkPointOf(file);
  if (!point) return [`${file} is not a chunk point's index`];
  const index = await chunkStoreKey(file)
    .then((key) => readPointIndex(point.store, point.name, key))
    .catch((error: Error) => error);
  if (index instanceof Error) return [`${file} cannot be opened: ${index.message}`];
  return index.size === virtualSize ? [] : [`${file} holds a disk of ${index.size} bytes, the point records ${virtualSize}`];
}
