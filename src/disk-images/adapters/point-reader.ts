import { join } from 'node:path';
import type { Writable } from 'node:stream';
import { BASE_ALLOCATION, NBD_STATE_ZERO } from '../../nbd-protocol/constants';
import { NbdClient } from '../../nbd-protocol/nbd-client';
import { openNbd } from '../../nbd-protocol/open-nbd';
import { terminateProcess } from '../../process/child-process';
import { launchQemuNbd } from '../../qemu/qemu-nbd-launcher';
import { socketExportLaunch } from '../../repositories/chunks/point-server';

const EXPORT_NAME = 'image';
export const READ_PIECE = 2 * 1024 * 1024;
/** Reads in flight: enough to keep qemu-nbd busy while the HTTP side drains, little memory per download. */
export const READ_AHEAD = 8;
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
  /** Bytes `out` has taken (their writes called back without an error). */
  sent: number;
}

/**
 * [start, end) of the disk written to `out` in order. Extents base:allocation reports as zero are never read: they
 * come from one shared buffer of zeroes (never written to). Data is read in pieces of `READ_PIECE` into `READ_AHEAD`
 * buffers of its own, `READ_AHEAD` reads in flight; a buffer is read into again only once `out` has called back for
 * the bytes it held. A fresh buffer per piece cost the hub more CPU in garbage collection than the copy to the socket.
 * Rejects when `out` fails or closes first; `out` is not ended.
 */
export async function sendImage(client: NbdClient, start: number, end: number, out: Writable, figures: ReadFigures = { read: 0, zero: 0, sent: 0 }): Promise<void> {
  if (out.destroyed) throw receiverClosed();
  const free: Buffer[] = Array.from({ length: READ_AHEAD }, () => Buffer.allocUnsafe(READ_PIECE));
  const queue: { buffer: Buffer; read: Promise<Buffer> }[] = [];
  let failure: Error | null = null;
  /** Writes `out` has not called back for yet. */
  let unanswered = 0;
  let wake: (() => void) | null = null;
  const notify = () => {
    const waiting = wake;
    wake = null;
    waiting?.();
  };
  const stop = (error: Error) => {
    failure ??= error;
    notify();
  };
  const onClose = () => stop(receiverClosed());
  const until = async (ready: () => boolean) => {
    for (;;) {
      if (failure) throw failure;
      if (ready()) return;
      await new Promise<void>((resolve) => (wake = resolve));
    }
  };
  /** Hands `data` to `out`; `recycle`, when given, is free again once `out` has called back. */
  const write = async (data: Buffer, recycle?: Buffer) => {
    if (failure) throw failure;
    const n = data.length;
    unanswered++;
    const taken = out.write(data, (error) => {
      unanswered--;
      if (error) stop(error);
      else figures.sent += n;
      if (recycle) free.push(recycle);
      notify();
    });
    if (!taken) await until(() => !out.writableNeedDrain);
  };
  const writeOldest = async () => {
    const { buffer, read } = queue.shift()!;
    await write(await read, buffer);
  };
  out.on('drain', notify);
  out.once('close', onClose);
  out.once('error', stop);
  try {
    for (let window = start; window < end; window += STATUS_WINDOW) {
      const windowEnd = Math.min(end, window + STATUS_WINDOW);
      const extents = (await client.blockStatusAll(window, windowEnd - window, [BASE_ALLOCATION])).get(BASE_ALLOCATION)!;
      for (const extent of extents) {
        const extentEnd = extent.offset + extent.length;
        if (extent.flags & NBD_STATE_ZERO) {
          while (queue.length) await writeOldest();
          for (let at = extent.offset; at < extentEnd; at += ZERO.length) {
            const n = Math.min(ZERO.length, extentEnd - at);
            figures.zero += n;
            await write(ZERO.subarray(0, n));
          }
          continue;
        }
        for (let at = extent.offset; at < extentEnd; at += READ_PIECE) {
          const n = Math.min(READ_PIECE, extentEnd - at);
          // every buffer queued or still held by `out`: the oldest read goes out first, then one comes back
          if (!free.length && queue.length) await writeOldest();
          await until(() => free.length > 0);
          const buffer = free.pop()!;
          const read = client.read(at, n, buffer).then((data) => {
            figures.read += n;
            return data;
          });
          // a read failing while an earlier one is awaited is reported when its turn comes, not as unhandled
          read.catch(() => undefined);
          queue.push({ buffer, read });
        }
      }
    }
    while (queue.length) await writeOldest();
    // `out` has called back for every byte: every buffer is back, and the zeroes are taken too
    await until(() => unanswered === 0);
  } finally {
    out.off('drain', notify);
    out.off('close', onClose);
    out.off('error', stop);
  }
}

/** Named as stream.finished names a stream closed too early, so a caller tells a client that went away from a failed read. */
function receiverClosed(): Error {
  return Object.assign(new Error('the receiver closed before the image was sent'), { code: 'ERR_STREAM_PREMATURE_CLOSE' });
}
