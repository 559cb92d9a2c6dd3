import { imageKeys } from '../../../qemu/image-keys';
import { chunkPointOf } from '../chunk-points';
import { buildChunkNbdArgs, ChunkNbdSpec } from './chunk-nbd-args';

/**
 * The chunk-nbd command line that serves a chunk point's index file (`file`): read-only, or, with `create`, as a new
 * point written on `create.base` (another point's index file, or null for zeros) and committed when stopped. Every
 * export of a chunk point, the hub's leased ones and the readers' sockets, is built here. Null for a file that is
 * no chunk point. Apart from the chunk store's code: the hub's export manager builds these without loading it.
 */
export function chunkPointServerArgs(
  file: string,
  serve: Pick<ChunkNbdSpec, 'listen' | 'exportName' | 'tls'> & { create?: { size: number; base: string | null } },
  pidFile: string,
): string[] | null {
  const point = chunkPointOf(file);
  if (!point) return null;
  const base = serve.create?.base ? chunkPointOf(serve.create.base) : null;
  if (serve.create?.base && !base) throw new Error(`${serve.create.base} is not a chunk point's index`);
  const keyFile = imageKeys.keyForNewFile(file);
  const { create, ...rest } = serve;
  const mode = create ? { commit: point.name, size: create.size, ...(base ? { base: base.name } : {}) } : { read: point.name };
  return buildChunkNbdArgs({ store: point.store, ...(keyFile ? { keyFile } : {}), point: mode, ...rest }, pidFile);
}
