import { constants, promises as fs } from 'node:fs';
import type { FileHandle } from 'node:fs/promises';
import { DIRECT_ALIGN, pageAlignedBuffer } from '../qcow2/durable-fs';

/** One batch of records (WRITE_BATCH, and the record that passes it) and the carried block fit: one write each. */
const STAGE_BYTES = 4 * 1024 * 1024 + 256 * 1024;

/**
 * A new pack, written front to back past the page cache where its filesystem allows it (O_DIRECT). A pack is written
 * once and read back rarely: copying it into the page cache cost a core-second per GiB of system time here (dd of
 * 1 GiB onto this machine's ext4: 1.15 s of system time buffered, 0.17 s direct), on the cores the backup's own
 * hashing, sealing and TLS need.
 *
 * Each append lands whole in the file before it resolves (readers read the records before `firstPending` from it):
 * the bytes are gathered in a stage aligned on the file, written up to their last block, that block padded; the
 * partial block is kept at the stage's start and written again, completed, by the next append, and `sync` cuts the
 * padding off. A filesystem that refuses O_DIRECT (tmpfs before Linux 6.6), at the open or at a write, gets every
 * append through the page cache from then on.
 */
export class PackFile {
  /** Bytes appended so far: the pack's length. */
  size = 0;
  private stage: Buffer | undefined;
  /** Bytes at the stage's start not yet written whole; they belong at `size - fill`, an aligned offset. */
  private fill = 0;
  /** An append failed: the stage may no longer hold the carried block, so nothing more is appended. */
  private broken: Error | null = null;

  private constructor(
    private readonly handle: FileHandle,
    private direct: FileHandle | undefined,
  ) {
    if (direct) this.stage = pageAlignedBuffer(STAGE_BYTES);
  }

  /** Creates `path` (never an existing file). */
  static async create(path: string, mode: number, options: { direct?: boolean } = {}): Promise<PackFile> {
    const handle = await fs.open(path, 'wx+', mode);
    const direct = options.direct === false ? undefined : await fs.open(path, constants.O_WRONLY | constants.O_DIRECT).catch(() => undefined);
    return new PackFile(handle, direct);
  }

  /** Whether appends go past the page cache. */
  get directIo(): boolean {
    return this.direct !== undefined;
  }

  /** Appends the buffers, in order; resolves once all of them are in the file. */
  async append(buffers: readonly Buffer[]): Promise<void> {
    if (this.broken) throw new Error(`an earlier append to this pack failed: ${this.broken.message}`);
    try {
      await this.appendAll(buffers);
    } catch (error) {
      this.broken = error as Error;
      throw error;
    }
  }

  private async appendAll(buffers: readonly Buffer[]): Promise<void> {
    const at = this.size;
    let length = 0;
    for (const b of buffers) length += b.length;
    if (this.direct) {
      try {
        await this.appendDirect(buffers);
        this.size = at + length;
        return;
      } catch (error) {
        if ((error as NodeJS.ErrnoException).code !== 'EINVAL') throw error;
        // a filesystem that took the open and refuses the write: the page cache from here on, this append included
        await this.dropDirect();
      }
    }
    await writevAll(this.handle, buffers, at);
    this.size = at + length;
  }

  /**
   * Through the stage: whenever it is full it is written whole, and what is left at the end is written up to its
   * last block, padded with zeros; that block's bytes stay at the stage's start, for the next append to complete.
   */
  private async appendDirect(buffers: readonly Buffer[]): Promise<void> {
    const stage = this.stage!;
    let start = this.size - this.fill;
    let fill = this.fill;
    for (const b of buffers) {
      for (let from = 0; from < b.length; ) {
        const copied = b.copy(stage, fill, from);
        from += copied;
        fill += copied;
        if (fill === stage.length) {
          await this.writeDirect(stage.length, start);
          start += stage.length;
          fill = 0;
        }
      }
    }
    const whole = Math.ceil(fill / DIRECT_ALIGN) * DIRECT_ALIGN;
    stage.fill(0, fill, whole);
    if (whole) await this.writeDirect(whole, start);
    const kept = fill % DIRECT_ALIGN;
    stage.copy(stage, 0, fill - kept, fill);
    this.fill = kept;
  }

  private async writeDirect(length: number, at: number): Promise<void> {
    for (let done = 0; done < length; ) {
      const { bytesWritten } = await this.direct!.write(this.stage!, done, length - done, at + done);
      if (bytesWritten <= 0) throw new Error(`no byte of a pack was written at ${at + done}`);
      done += bytesWritten;
    }
  }

  private async dropDirect(): Promise<void> {
    const direct = this.direct;
    this.direct = undefined;
    this.stage = undefined;
    this.fill = 0;
    await direct?.close().catch(() => undefined);
  }

  /** Cuts the padding off and makes the pack durable. */
  async sync(): Promise<void> {
    await this.handle.truncate(this.size);
    await this.handle.sync();
  }

  async close(): Promise<void> {
    await this.dropDirect();
    await this.handle.close();
  }
}

/** A short write is no error (a filesystem that fills writes what fits): the rest is written again, and then fails. */
async function writevAll(handle: FileHandle, buffers: readonly Buffer[], at: number): Promise<void> {
  let rest = [...buffers];
  let length = 0;
  for (const b of rest) length += b.length;
  for (const end = at + length; at < end; ) {
    const { bytesWritten } = await handle.writev(rest, at);
    if (bytesWritten <= 0) throw new Error(`no byte of a pack was written at ${at}`);
    at += bytesWritten;
    rest = skipBytes(rest, bytesWritten);
  }
}

/** `buffers` without their first `n` bytes. */
function skipBytes(buffers: Buffer[], n: number): Buffer[] {
  let k = 0;
  for (; k < buffers.length && n >= buffers[k].length; k++) n -= buffers[k].length;
  return k < buffers.length ? [buffers[k].subarray(n), ...buffers.slice(k + 1)] : [];
}
