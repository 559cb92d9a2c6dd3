import { open } from 'node:fs/promises';
import { ChunkStore } from '../../src/repositories/chunks/chunk-store';

const PIECE = 2 * 1024 * 1024;

/** A point's disk into a new raw file through the view the hub's NBD server serves, 2 MiB a read, holes left for zeros, fsynced. */
export async function readBack(store: ChunkStore, name: string, out: string): Promise<void> {
  const view = await store.openPoint(name);
  const target = await open(out, 'wx');
  try {
    await target.truncate(view.size);
    const zeros = Buffer.alloc(PIECE);
    for (let at = 0; at < view.size; at += PIECE) {
      const data = await view.read(at, Math.min(PIECE, view.size - at));
      if (!data.equals(zeros.subarray(0, data.length))) await target.write(data, 0, data.length, at);
    }
    await target.sync();
  } finally {
    await target.close();
    await view.close();
  }
}
