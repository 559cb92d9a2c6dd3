import { readFile } from 'node:fs/promises';
import { imageKeys } from '../../qemu/image-keys';
import { buildSocketExportArgs, SocketExportSpec } from '../../qemu/qemu-nbd-args';
import { buildChunkNbdArgs } from './chunk-nbd/chunk-nbd-args';
import { chunkPointOf } from './chunk-points';
import { ChunkPointView, ChunkStore } from './chunk-store';

/**
 * How the hub's readers of a point (downloads, restore mounts, verify) serve its disk on a Unix socket: qemu-nbd for
 * a qcow2 file (with its backing chain), the chunk store's own server for a chunk point's index. Either is launched
 * and stopped the same way (src/qemu/qemu-nbd-launcher.ts): a pid file once it serves, SIGTERM to end it.
 */
export function socketExportLaunch(spec: SocketExportSpec, pidFile: string): { binary?: string; args: string[] } {
  const point = chunkPointOf(spec.file);
  if (!point) return { args: buildSocketExportArgs(spec, pidFile) };
  if (spec.writable || spec.bitmap !== undefined) throw new Error(`chunk point ${spec.file} is served read-only and without dirty bitmaps`);
  const keyFile = imageKeys.keyForNewFile(spec.file);
  return {
    binary: process.execPath,
    args: buildChunkNbdArgs({ store: point.store, ...(keyFile ? { keyFile } : {}), point: { read: point.name }, listen: { socket: spec.socket }, exportName: spec.exportName }, pidFile),
  };
}

/** A chunk point's disk read in this process (no server between): what verify reads, or null for a file that is no chunk point. */
export async function openChunkPoint(file: string): Promise<ChunkPointView | null> {
  const opened = await storeOf(file);
  return opened && opened.store.openPoint(opened.name);
}

/**
 * What a qcow2 copy of a chunk point's disk takes, as `qemu-img measure` tells of a qcow2 point: its blocks that
 * are not zeros, its L2 tables (8 bytes per 64 KiB cluster) and refcounts, and a header's worth. Null for a file that
 * is no chunk point.
 */
export async function measureChunkPoint(file: string): Promise<number | null> {
  const opened = await storeOf(file);
  if (!opened) return null;
  const index = await opened.store.readPoint(opened.name);
  return index.blocks.filter(Boolean).length * index.chunkSize + 2 * Math.ceil(index.size / 8192) + 1024 * 1024;
}

async function storeOf(file: string): Promise<{ store: ChunkStore; name: string } | null> {
  const point = chunkPointOf(file);
  if (!point) return null;
  const keyFile = imageKeys.keyForNewFile(file);
  return { store: await ChunkStore.open(point.store, { key: keyFile ? await readFile(keyFile) : null }), name: point.name };
}

/**
 * What a verify checks of a chunk point besides its blocks' digests: its index opens (with the repository's key, in
 * an encrypted repository), names only chunks its store holds, and is of the size the point recorded.
 */
export async function chunkPointProblems(file: string, virtualSize: number): Promise<string[]> {
  const view = await openChunkPoint(file).catch((error: Error) => error);
  if (view === null) return [`${file} is not a chunk point's index`];
  if (view instanceof Error) return [`${file} cannot be opened: ${view.message}`];
  await view.close();
  return view.size === virtualSize ? [] : [`${file} holds a disk of ${view.size} bytes, the point records ${virtualSize}`];
}
