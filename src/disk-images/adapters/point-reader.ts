import { join } from 'node:path';
import { BASE_ALLOCATION, NBD_STATE_ZERO } from '../../nbd-protocol/constants';
import { NbdClient } from '../../nbd-protocol/nbd-client';
import { openNbd } from '../../nbd-protocol/open-nbd';
import { terminateProcess } from '../../process/child-process';
import { launchQemuNbd } from '../../qemu/qemu-nbd-launcher';
import { socketExportLaunch } from '../../repositories/chunks/point-server';

const EXPORT_NAME = 'image';
export const READ_PIECE = 4 * 1024 * 1024;
/** Reads in flight: enough to keep qemu-nbd busy while the HTTP side drains, little memory per download. */
export const READ_AHEAD = 4;
/** Block status is asked for this much of the disk at a time, so a huge sparse disk needs few round trips and no large extent list. */
const STATUS_WINDOW = 1024 * 1024 * 1024;
const ZERO = Buffer.alloc(1024 * 1024);

export interface PointReader {
  client: NbdClient;
  /** The disk's virtual size as qemu-nbd serves it. */
  size: number;
  close(): Promise<void>;
}

/**
 * The point's top file served read-only by qemu-nbd on a Unix socket in `workDir` (qemu reads the
 * backing chain; a chunk point's index by the chunk store's server), with base:allocation so holes and zero clusters are known without reading them.
 * Its shared image lock makes a merge or writer on any file of the chain fail instead of changing
 * what is read.
 */
export async function openPointReader(file: string, workDir: string, readyTimeoutMs = 10_000): Promise<PointReader> {
  const socket = join(workDir, 'nbd.sock');
  const pidFile = join(workDir, 'qemu-nbd.pid');
  const server = await launchQemuNbd({ ...socketExportLaunch({ file, format: 'qcow2', socket, exportName: EXPORT_NAME, shared: 1 }, pidFile), pidFile, listen: { socket }, logFile: join(workDir, 'qemu-nbd.log'), detached: false }, { readyTimeoutMs });
  const stop = () => terminateProcess(server, 5_000, `qemu-nbd image export of ${file}`);
  let client: NbdClient;
  try {
    client = await openNbd(`nbd+unix:///${EXPORT_NAME}?socket=${socket}`, { metaContexts: [BASE_ALLOCATION] });
  } catch (error) {
    await stop();
    throw error;
  }
  let closing: Promise<void> | undefined;
  return {
    client,
    size: client.size,
    close: () =>
      (closing ??= (async () => {
        await client.close().catch(() => undefined);
        await stop();
      })()),
  };
}

export interface ReadFigures {
  /** Bytes read from the image. */
  read: number;
  /** Bytes of holes and zero clusters, sent as zeroes without reading them. */
  zero: number;
}

/**
 * [start, end) of the disk as buffers in order. Extents base:allocation reports as zero are never
 * read: they come from one shared buffer of zeroes (never written to, so safe to queue many times).
 * Data is read in pieces of `READ_PIECE` with `READ_AHEAD` reads in flight.
 */
export async function* imageChunks(client: NbdClient, start: number, end: number, figures: ReadFigures = { read: 0, zero: 0 }): AsyncGenerator<Buffer> {
  const queue: Promise<Buffer>[] = [];
  try {
    for (let window = start; window < end; window += STATUS_WINDOW) {
      const windowEnd = Math.min(end, window + STATUS_WINDOW);
      const extents = (await client.blockStatusAll(window, windowEnd - window, [BASE_ALLOCATION])).get(BASE_ALLOCATION)!;
      for (const extent of extents) {
        const extentEnd = extent.offset + extent.length;
        if (extent.flags & NBD_STATE_ZERO) {
          while (queue.length) yield await queue.shift()!;
          for (let at = extent.offset; at < extentEnd; at += ZERO.length) {
            const n = Math.min(ZERO.length, extentEnd - at);
            figures.zero += n;
            yield ZERO.subarray(0, n);
          }
          continue;
        }
        for (let at = extent.offset; at < extentEnd; at += READ_PIECE) {
          const n = Math.min(READ_PIECE, extentEnd - at);
          const read = client.read(at, n).then((data) => {
            figures.read += n;
            return data;
          });
          // a read failing while an earlier one is awaited is reported when its turn comes, not as unhandled
          read.catch(() => undefined);
          queue.push(read);
          if (queue.length >= READ_AHEAD) yield await queue.shift()!;
        }
      }
    }
    while (queue.length) yield await queue.shift()!;
  } finally {
    queue.length = 0;
  }
}
