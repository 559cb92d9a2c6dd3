import { promises as fs } from 'node:fs';
import type { FileHandle } from 'node:fs/promises';
import { Writable } from 'node:stream';

/** Holes are made per filesystem block; 64 KiB keeps the zero test cheap and the holes useful. */
export const SPARSE_BLOCK = 64 * 1024;
const ZERO = Buffer.alloc(SPARSE_BLOCK);

/**
 * Writes a stream into a new file, skipping every all-zero piece (aligned to SPARSE_BLOCK on the
 * file) so it stays a hole, and truncates the file to the bytes received at the end: a disk image
 * of mostly empty space takes only the space of its data, as it did in the repository.
 */
export class SparseFileWriter extends Writable {
  /** Bytes received (holes included). */
  position = 0;
  /** Bytes actually written to the file. */
  written = 0;
  private handle: FileHandle | undefined;

  constructor(private readonly path: string) {
    super({ highWaterMark: 4 * 1024 * 1024 });
  }

  override _construct(callback: (error?: Error | null) => void): void {
    fs.open(this.path, 'wx', 0o600).then(
      (h) => {
        this.handle = h;
        callback();
      },
      (e: Error) => callback(e),
    );
  }

  override _write(chunk: Buffer, _encoding: BufferEncoding, callback: (error?: Error | null) => void): void {
    this.writeSparse(chunk).then(() => callback(), callback);
  }

  /** What arrived while a write was under way, in one piece: an HTTP body comes in 64 KiB pieces, one system call each otherwise. */
  override _writev(chunks: { chunk: Buffer }[], callback: (error?: Error | null) => void): void {
    this.writeSparse(chunks.length === 1 ? chunks[0].chunk : Buffer.concat(chunks.map((c) => c.chunk))).then(() => callback(), callback);
  }

  override _final(callback: (error?: Error | null) => void): void {
    // a trailing hole is only there once the file is as long as the image
    this.handle!.truncate(this.position)
      .then(() => this.handle!.sync())
      .then(() => callback(), callback);
  }

  override _destroy(error: Error | null, callback: (error?: Error | null) => void): void {
    const handle = this.handle;
    this.handle = undefined;
    if (!handle) return callback(error);
    handle.close().then(
      () => callback(error),
      () => callback(error),
    );
  }

  /** Each run of non-zero pieces is one write: a write per 64 KiB would cost more than the bytes. */
  private async writeSparse(chunk: Buffer): Promise<void> {
    let run: { from: number; to: number } | null = null;
    for (let at = 0; at < chunk.length; ) {
      const n = Math.min(chunk.length - at, SPARSE_BLOCK - ((this.position + at) % SPARSE_BLOCK));
      const zero = chunk.subarray(at, at + n).equals(ZERO.subarray(0, n));
      if (!zero && run) run.to = at + n;
      else if (!zero) run = { from: at, to: at + n };
      else if (run) {
        await this.writeRun(chunk, run);
        run = null;
      }
      at += n;
    }
    if (run) await this.writeRun(chunk, run);
    this.position += chunk.length;
  }

  private async writeRun(chunk: Buffer, { from, to }: { from: number; to: number }): Promise<void> {
    for (let done = from; done < to; ) done += (await this.handle!.write(chunk, done, to - done, this.position + done)).bytesWritten;
    this.written += to - from;
  }
}
