import { join } from 'node:path';
import { NbdServer } from '../../src/nbd-protocol/nbd-server';
import { ChunkStore } from '../../src/repositories/chunks/chunk-store';
import { shell } from './measure';

/**
 * A point's disk into a new raw file and fsynced, as a disk image download reads a point: `qemu-img convert` from
 * the hub's NBD server serving the point's view on a Unix socket, the same tool and options that read a qcow2 point.
 */
export async function readBack(store: ChunkStore, name: string, out: string): Promise<void> {
  const view = await store.openPoint(name);
  const socket = join(store.dir, 'read-back.sock');
  const server = await NbdServer.listen(socket, 'point', view);
  try {
    await shell(`qemu-img convert -f raw 'nbd+unix:///point?socket=${socket}' -O raw '${out}' && sync '${out}'`);
  } finally {
    await server.close();
    await view.close();
  }
}
