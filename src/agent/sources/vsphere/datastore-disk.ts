import type { CopySource } from '../../../data-mover';

/** What reading a datastore file needs of the vSphere client: Range GETs with the session's cookie. */
export interface RangeReader {
  readRange(url: URL, offset: number, length: number, into?: Buffer): Promise<Buffer>;
}

/**
 * A VMware disk's flat file, read over the datastore's HTTP access with Range GETs, offered to the data
 * mover as a copy source. It has no meta contexts: what to read comes from changed block tracking (the
 * copy's `ranges`) or is the whole disk.
 */
export class DatastoreDisk implements CopySource {
  readonly metaContexts: ReadonlyMap<string, number> = new Map();
  readonly blockSize = Object.freeze({ minimum: 1, preferred: 4096, maximum: DatastoreDisk.MAX_REQUEST, advertised: false });
  readonly maxPayload = DatastoreDisk.MAX_REQUEST;
  private open = true;

  /** One GET per copy request (4 MiB by default): few enough requests, short enough to retry or time out alone. */
  static readonly MAX_REQUEST = 32 * 1024 * 1024;

  constructor(
    private readonly reader: RangeReader,
    readonly url: URL,
    readonly size: number,
    /** Where the disk's first byte lies in the file (a FLAT extent's offset). */
    private readonly fileOffset = 0,
  ) {}

  get isOpen(): boolean {
    return this.open;
  }

  async read(offset: number, length: number, into?: Buffer, pieceSize = this.maxPayload): Promise<Buffer> {
    if (!this.open) throw new Error(`${this.url.pathname} is closed`);
    if (!Number.isSafeInteger(offset) || !Number.isSafeInteger(length) || offset < 0 || length < 0 || offset + length > this.size) {
      throw new RangeError(`read ${offset}+${length} is outside the disk's ${this.size} bytes`);
    }
    if (into && into.length < length) throw new RangeError(`read buffer of ${into.length} bytes is smaller than ${length}`);
    const dest = into ? into.subarray(0, length) : Buffer.allocUnsafe(length);
    const step = Math.max(1, Math.min(pieceSize, this.maxPayload));
    const parts: Promise<Buffer>[] = [];
    for (let done = 0; done < length; done += step) {
      const n = Math.min(step, length - done);
      parts.push(this.reader.readRange(this.url, this.fileOffset + offset + done, n, dest.subarray(done, done + n)));
    }
    const got = await Promise.all(parts);
    // a reader that could not fill the buffer in place handed back its own: copied where it belongs
    let at = 0;
    for (const part of got) {
      if (part.buffer !== dest.buffer || part.byteOffset !== dest.byteOffset + at) part.copy(dest, at);
      at += part.length;
    }
    return dest;
  }

  blockStatusAll(): Promise<never> {
    return Promise.reject(new Error('a datastore file has no block status: copy it by ranges or whole'));
  }

  async close(): Promise<void> {
    this.open = false;
  }
}
