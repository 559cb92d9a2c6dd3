import { rmdir } from 'node:fs/promises';
import { dirname, sep } from 'node:path';

/**
 * Where a chunks repository's points are, as paths its restore points record (`disks[].file`, relative to the
 * repository root) and as the chunk store names them (`vmId/pointId/diskId`, src/repositories/chunks/chunk-store.ts).
 * Every reader that opens a point by its file finds out from the path alone whether it is a chunk point's index
 * (served by the chunk store's own NBD server) or a qcow2 file (served by qemu-nbd).
 */
export const CHUNK_STORE_DIR = 'chunks';
const POINTS = `${CHUNK_STORE_DIR}/points/`;
const INDEX = '.idx';

export function chunkPointFile(vmId: string, diskId: string, restorePointId: string): string {
  return `${POINTS}${vmId}/${restorePointId}/${diskId}${INDEX}`;
}

export function isChunkPointFile(file: string): boolean {
  return chunkPointOf(file) !== null;
}

/** The store directory and the point's name of a point's index file (absolute or relative), or null for any other file. */
export function chunkPointOf(file: string): { store: string; name: string } | null {
  const posix = sep === '/' ? file : file.split(sep).join('/');
  const at = posix.lastIndexOf(`/${POINTS}`);
  const start = at >= 0 ? at + 1 : posix.startsWith(POINTS) ? 0 : -1;
  if (start < 0 || !posix.endsWith(INDEX)) return null;
  const name = posix.slice(start + POINTS.length, -INDEX.length);
  if (name.split('/').length !== 3) return null;
  return { store: posix.slice(0, start + CHUNK_STORE_DIR.length), name };
}

/** A point's directory (`chunks/points/<vm>/<point>/`) goes with its last index: a removed point leaves no trace in the store's points. */
export async function removeEmptyPointDir(indexFile: string): Promise<void> {
  await rmdir(dirname(indexFile)).catch((error: NodeJS.ErrnoException) => {
    if (error.code !== 'ENOENT' && error.code !== 'ENOTEMPTY') throw error;
  });
}
