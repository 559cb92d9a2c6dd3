import { join } from 'node:path';
import type { Writable } from 'node:stream';
import { BASE_ALLOCATION, NBD_STATE_ZERO } from '../../nbd-protocol/constants';
import { NbdClient } from '../../nbd-protocol/nbd-client';
import { openNbd } from '../../nbd-protocol/open-nbd';
import { terminateProcess } from '../../process/child-process';
import { launchQemuNbd } from '../../qemu/qemu-nbd-launcher';
import type { DiskExtent, ReadableDisk } from '../../nbd-protocol/nbd-server';
import { openChunkPoint, socketExportLaunch } from '../../repositories/chunks/point-server';
import type { ChunkPointView, PackedBlock } from '../../repositories/chunks/chunk-store';
import { ExtentsCodec, frameHeader } from '../image-extents';

const EXPORT_NAME = 'image';
export const READ_PIECE = 2 * 1024 * 1024;
/** Reads in flight: enough to keep the reader busy while the HTTP side drains, little memory per download. */
export const READ_AHEAD = 8;
/** Allocation is asked for this much of the disk at a time, so a huge sparse disk needs few round trips and no large extent list. */
const STATUS_WINDOW = 1024 * 1024 * 1024;
const ZERO = Buffer.alloc(1024 * 1024);

/**
 * A point's disk as a download reads it: its bytes, and which runs are zeros (never read); a chunk point's also as its
 * blocks are stored (ChunkPointView.readPacked), for a client that takes them zstd-packed.
 */
export type PointDisk = ReadableDisk & Required<Pick<ReadableDisk, 'allocation'>> & Partial<Pick<ChunkPointView, 'readPacked'>>;

export interface PointReader {
  disk: PointDisk;
  /** The disk's virtual size. */
  size: number;
  close(): Promise<void>;
}

/**
 * A chunk point's disk read in this process, through the store's index (no server between: a process and a socket
 * in the way cost a download a third of its rate); a qcow2 point's top file served read-only by qemu-nbd on a Unix
 * socket in `workDir` (qemu reads the backing chain), with base:allocation so holes and zero clusters are known
 * without reading them, whose shared image lock makes a merge or writer on any file of the chain fail instead of
 * changing what is read. A chunk point is kept by the hold its caller has on its index (a delete is refused).
 */
export async function openPointReader(file: string, workDir: string, readyTimeoutMs = 10_000): Promise<PointReader> {
  const chunks = await openChunkPoint(file);
  if (chunks) {
    let closed: Promise<void> | undefined;
    return { disk: chunks, size: chunks.size, close: () => (closed ??= chunks.close()) };
  }
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
    disk: nbdDisk(client),
    size: client.size,
    close: () =>
      (closing ??= (async () => {
        await client.close().catch(() => undefined);
        await stop();
      })()),
  };
}

/**
 * An NBD export as a point's disk: base:allocation's zero flag is what it reports as zeros. A read or status that
 * does not lie on the server's minimum block (512 bytes for an encrypted qcow2) asks for the blocks around it and
 * keeps its own part: a range download may start or end anywhere, and the last byte of an answer is read on its own.
 */
function nbdDisk(client: NbdClient): PointDisk {
  const min = client.blockSize.minimum;
  const around = (offset: number, length: number) => {
    // the end is capped at the disk's for the last block: a range beyond it is refused here, as the client would
    if (!(offset >= 0 && length >= 0 && offset + length <= client.size)) throw new RangeError(`[${offset}, ${offset + length}) is not within the disk's ${client.size} bytes`);
    return { from: offset - (offset % min), to: Math.min(client.size, Math.ceil((offset + length) / min) * min) };
  };
  const status = async (offset: number, length: number): Promise<DiskExtent[]> =>
    (await client.blockStatusAll(offset, length, [BASE_ALLOCATION])).get(BASE_ALLOCATION)!.map((e) => ({ length: e.length, zero: (e.flags & NBD_STATE_ZERO) !== 0 }));
  return {
    size: client.size,
    read: async (offset, length, into) => {
      const { from, to } = around(offset, length);
      if (from === offset && to === offset + length) return client.read(offset, length, into);
      const out = into ?? Buffer.allocUnsafe(length);
      (await client.read(from, to - from)).copy(out, 0, offset - from, offset - from + length);
      return out;
    },
    allocation: async (offset, length) => {
      const { from, to } = around(offset, length);
      if (from === offset && to === offset + length) return status(offset, length);
      return clipExtents(await status(from, to - from), offset - from, length);
    },
  };
}

/** The part [skip, skip + length) of contiguous extents. */
export function clipExtents(extents: readonly DiskExtent[], skip: number, length: number): DiskExtent[] {
  const clipped: DiskExtent[] = [];
  let at = 0;
  for (const extent of extents) {
    const from = Math.max(at, skip);
    const to = Math.min(at + extent.length, skip + length);
    if (to > from) clipped.push({ length: to - from, zero: extent.zero });
    at += extent.length;
  }
  return clipped;
}

export interface ReadFigures {
  /** Bytes read from the image. */
  read: number;
  /** Bytes of holes and zero clusters, sent as zeroes without reading them. */
  zero: number;
  /** Bytes `out` has taken (their writes called back without an error). */
  sent: number;
}

/** How a download's body is laid out: the disk's bytes as they are, or frames of image-extents.ts with or without a codec. */
export type Framing = { codec: ExtentsCodec } | null;

/**
 * [start, end) of the disk written to `out` in order. Extents base:allocation reports as zero are never read: they
 * come from one shared buffer of zeroes (never written to). Data is read in pieces of `READ_PIECE` into `READ_AHEAD`
 * buffers of its own, `READ_AHEAD` reads in flight; a buffer is read into again only once `out` has called back for
 * the bytes it held. A fresh buffer per piece cost the hub more CPU in garbage collection than the copy to the socket.
 * `framing`: as frames of image-extents.ts, the zero extents left out (counted as sent: the client makes them holes);
 * with the zstd codec, a disk that can (a chunk point) sends its compressed blocks as they are stored. Rejects when
 * `out` fails or closes first; `out` is not ended.
 */
export async function sendImage(disk: PointDisk, start: number, end: number, out: Writable, figures: ReadFigures = { read: 0, zero: 0, sent: 0 }, framing: Framing = null): Promise<void> {
  if (out.destroyed) throw receiverClosed();
  const codec = framing?.codec ?? null;
  const readPacked = codec === 'zstd' && disk.readPacked ? disk.readPacked.bind(disk) : null;
  // shared memory: a chunk point's reader threads open chunks straight into it (ChunkWorkers.open); a packed read
  // takes one too, so that as many reads are in flight either way
  const free: Buffer[] = Array.from({ length: READ_AHEAD }, () => Buffer.from(new SharedArrayBuffer(READ_PIECE)));
  const queue: { buffer: Buffer; parts: Promise<Buffer[]>; bytes: number }[] = [];
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
  /**
   * Hands `parts` to `out`, `bytes` of the disk in all; `recycle`, when given, is free again once `out` has called
   * back for the last of them.
   */
  const write = async (parts: readonly Buffer[], bytes: number, recycle?: Buffer) => {
    if (failure) throw failure;
    let taken = true;
    parts.forEach((part, k) => {
      const last = k === parts.length - 1;
      unanswered++;
      taken = out.write(part, (error) => {
        unanswered--;
        if (error) stop(error);
        // a frame's header is not a byte of the disk: the disk's bytes are counted once their last part is taken
        else if (last) figures.sent += bytes;
        if (last && recycle) free.push(recycle);
        notify();
      });
    });
    if (!taken) await until(() => !out.writableNeedDrain);
  };
  const writeOldest = async () => {
    const { buffer, parts, bytes } = queue.shift()!;
    await write(await parts, bytes, buffer);
  };
  out.on('drain', notify);
  out.once('close', onClose);
  out.once('error', stop);
  try {
    for (let window = start; window < end; window += STATUS_WINDOW) {
      const windowEnd = Math.min(end, window + STATUS_WINDOW);
      let extentStart = window;
      for (const extent of await disk.allocation(window, windowEnd - window)) {
        const extentEnd = extentStart + extent.length;
        const from = extentStart;
        extentStart = extentEnd;
        if (extent.zero && framing) {
          figures.zero += extentEnd - from;
          figures.sent += extentEnd - from;
          continue;
        }
        if (extent.zero) {
          while (queue.length) await writeOldest();
          for (let at = from; at < extentEnd; at += ZERO.length) {
            const n = Math.min(ZERO.length, extentEnd - at);
            figures.zero += n;
            await write([ZERO.subarray(0, n)], n);
          }
          continue;
        }
        for (let at = from; at < extentEnd; at += READ_PIECE) {
          const n = Math.min(READ_PIECE, extentEnd - at);
          // every buffer queued or still held by `out`: the oldest read goes out first, then one comes back
          if (!free.length && queue.length) await writeOldest();
          await until(() => free.length > 0);
          const buffer = free.pop()!;
          const parts = (readPacked ? readPacked(at, n).then(packedFrames) : disk.read(at, n, buffer.subarray(0, n)).then((data) => (framing ? [frameHeader(at, n, codec), data] : [data]))).then((pieces) => {
            figures.read += n;
            return pieces;
          });
          // a read failing while an earlier one is awaited is reported when its turn comes, not as unhandled
          parts.catch(() => undefined);
          queue.push({ buffer, parts, bytes: n });
        }
      }
    }
    while (queue.length) await writeOldest();
    if (framing) out.write(frameHeader(end, 0, codec));
    // `out` has called back for every byte: every buffer is back, and the zeroes are taken too
    await until(() => unanswered === 0);
  } finally {
    out.off('drain', notify);
    out.off('close', onClose);
    out.off('error', stop);
  }
}

/** A chunk point's stored blocks as zstd-packed frames: a compressed block's bytes as they are, another's as a plain frame. */
function packedFrames(blocks: PackedBlock[]): Buffer[] {
  return blocks.flatMap(({ offset, length, compressed, body }) => [frameHeader(offset, length, 'zstd', compressed ? body.length : 0), body]);
}

/** Named as stream.finished names a stream closed too early, so a caller tells a client that went away from a failed read. */
function receiverClosed(): Error {
  return Object.assign(new Error('the receiver closed before the image was sent'), { code: 'ERR_STREAM_PREMATURE_CLOSE' });
}
