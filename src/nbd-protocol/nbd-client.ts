import { Socket } from 'node:net';
import type { Duplex } from 'node:stream';
import {
  MAX_NON_PAYLOAD_LENGTH,
  NBD_CMD_BLOCK_STATUS,
  NBD_CMD_DISC,
  NBD_CMD_FLAG_FAST_ZERO,
  NBD_CMD_FLAG_FUA,
  NBD_CMD_FLAG_NO_HOLE,
  NBD_CMD_FLAG_REQ_ONE,
  NBD_CMD_FLUSH,
  NBD_CMD_READ,
  NBD_CMD_WRITE,
  NBD_CMD_WRITE_ZEROES,
  NBD_FLAG_CAN_MULTI_CONN,
  NBD_FLAG_READ_ONLY,
  NBD_FLAG_SEND_FAST_ZERO,
  NBD_FLAG_SEND_FLUSH,
  NBD_FLAG_SEND_FUA,
  NBD_FLAG_SEND_TRIM,
  NBD_FLAG_SEND_WRITE_ZEROES,
  NBD_REQUEST_MAGIC,
  REQUEST_HEADER_SIZE,
} from './constants';
import { NbdCommandError, nbdCommandName, NbdConnectionClosedError, NbdError, NbdProtocolError } from './errors';
import { directReadControl } from './direct-read';
import { BlockSizeConstraints, HandshakeOptions, negotiate } from './handshake';
import { BlockStatusDescriptor, NbdReplyParser, ReplySink } from './reply-parser';

export interface NbdClientOptions extends HandshakeOptions {
  /** Give up the handshake after this long (default 30 s). */
  handshakeTimeoutMs?: number;
  /** After NBD_CMD_DISC, wait this long for the server to close before dropping the connection (default 5 s). */
  closeTimeoutMs?: number;
  /**
   * With requests pending, a server that sends nothing for this long (e.g. it
   * stopped in the middle of a reply) fails the connection (default 300 s; 0 = never).
   */
  replyTimeoutMs?: number;
}

/** One extent of a meta context, in absolute export offsets. */
export interface Extent {
  offset: number;
  length: number;
  flags: number;
}

export interface WriteOptions {
  /** NBD_CMD_FLAG_FUA: durable before the reply (needs NBD_FLAG_SEND_FUA). */
  fua?: boolean;
}

export interface WriteZeroesOptions extends WriteOptions {
  /** NBD_CMD_FLAG_NO_HOLE: the server must allocate the zeroed range instead of punching a hole. */
  noHole?: boolean;
  /** NBD_CMD_FLAG_FAST_ZERO: fail with ENOTSUP rather than zero slowly (needs NBD_FLAG_SEND_FAST_ZERO). */
  fastZero?: boolean;
}

interface Pending {
  type: number;
  offset: number;
  length: number;
  resolve: (value: undefined) => void;
  reject: (error: Error) => void;
  /** READ: destination buffer and the index in it that corresponds to `offset`. */
  dest?: Buffer;
  destBase: number;
  extents?: Map<number, BlockStatusDescriptor[]>;
  error?: NbdCommandError;
}

type State = 'open' | 'closing' | 'closed';

const TWO_32 = 4294967296;
const NBD_ESHUTDOWN = 108;

/**
 * NBD client over any Duplex stream (TCP or Unix socket, SSH channel, ...).
 * Requests are pipelined: every call sends at once and is matched to its reply
 * by cookie, so callers control the number in flight simply by how many
 * promises they keep open. A protocol violation or a dropped connection rejects
 * every pending request and closes the stream; nothing is thrown asynchronously.
 */
export class NbdClient {
  readonly exportName: string;
  /** Export size in bytes. */
  readonly size: number;
  readonly transmissionFlags: number;
  readonly blockSize: Readonly<BlockSizeConstraints>;
  /** Largest READ/WRITE payload sent in one request; longer calls are split. */
  readonly maxPayload: number;
  readonly structuredReplies: boolean;
  /** Selected meta contexts, name -> id. */
  readonly metaContexts: ReadonlyMap<string, number>;
  readonly description?: string;
  /** Resolves once the connection is gone, with the error that ended it (undefined after a clean close). */
  readonly closed: Promise<Error | undefined>;

  private readonly stream: Duplex;
  private readonly parser: NbdReplyParser;
  private readonly pending = new Map<number, Pending>();
  private readonly contextNames = new Map<number, string>();
  private readonly closeTimeoutMs: number;
  private state: State = 'open';
  private closeReason?: Error;
  private nextCookie = 1;
  private resolveClosed!: (reason: Error | undefined) => void;
  private closingPromise?: Promise<void>;
  private drained?: () => void;
  /** Zero-copy receive (sockets from connectSocket): small buffer for headers, and the destination view handed out last. */
  private readScratch?: Buffer;
  private directView?: Buffer;
  private corked = false;
  private readonly replyTimeoutMs: number;
  private lastActivity = Date.now();
  private watchdog?: NodeJS.Timeout;
  private readonly uncork = () => {
    this.corked = false;
    this.stream.uncork();
  };

  private readonly sink: ReplySink = {
    data: (cookie, offset, data) => {
      const p = this.pending.get(cookie)!;
      data.copy(p.dest!, p.destBase + (offset - p.offset));
    },
    hole: (cookie, offset, length) => {
      const p = this.pending.get(cookie)!;
      const start = p.destBase + (offset - p.offset);
      p.dest!.fill(0, start, start + length);
    },
    blockStatus: (cookie, contextId, descriptors) => {
      this.pending.get(cookie)!.extents!.set(contextId, descriptors);
    },
    error: (cookie, errno, message, errorOffset) => {
      const p = this.pending.get(cookie)!;
      p.error ??= new NbdCommandError(nbdCommandName(p.type), p.offset, p.length, errno, message || undefined, errorOffset);
      // Spec: a client receiving ESHUTDOWN must initiate a soft disconnect (no new requests, DISC once drained).
      if (errno === NBD_ESHUTDOWN && this.state === 'open') void this.close();
    },
    done: (cookie) => {
      const p = this.pending.get(cookie)!;
      this.pending.delete(cookie);
      if (p.error) p.reject(p.error);
      else p.resolve(undefined);
      if (this.pending.size === 0) this.drained?.();
    },
  };

  private readonly onData = (chunk: Buffer) => {
    if (this.state === 'closed') return;
    this.lastActivity = Date.now();
    try {
      this.parser.push(chunk, this.sink);
    } catch (error) {
      this.fail(error instanceof NbdError ? error : new NbdProtocolError(String(error)));
    }
  };
  private readonly nextReadBuffer = (): Uint8Array => {
    const remaining = this.parser.dataRemaining;
    if (remaining > 0 && this.state !== 'closed') {
      const p = this.pending.get(this.parser.dataCookie);
      if (p?.dest) {
        const start = p.destBase + (this.parser.dataNextOffset - p.offset);
        this.directView = p.dest.subarray(start, start + remaining);
        return this.directView;
      }
    }
    this.directView = undefined;
    return this.readScratch!;
  };
  private readonly onDirectRead = (nread: number, buffer: Uint8Array) => {
    if (this.state === 'closed') return;
    this.lastActivity = Date.now();
    try {
      if (this.directView !== undefined && buffer === this.directView) this.parser.skipData(nread, this.sink);
      else this.parser.push(Buffer.from(buffer.buffer, buffer.byteOffset, nread), this.sink);
    } catch (error) {
      this.fail(error instanceof NbdError ? error : new NbdProtocolError(String(error)));
    }
  };
  private readonly onEnd = () => {
    if (this.state === 'closed') return;
    if (this.state === 'closing' && this.pending.size === 0) {
      this.finishClose(undefined);
      return;
    }
    const midReply = this.parser.idle ? '' : ' in the middle of a reply';
    this.fail(new NbdConnectionClosedError(`NBD server closed the connection${midReply} with ${this.pending.size} request(s) pending`));
  };
  private readonly onError = (error: Error) => {
    if (this.state === 'closed') return;
    this.fail(new NbdConnectionClosedError(`NBD connection failed: ${error.message}`, error));
  };

  private readonly checkReplies = () => {
    if (this.pending.size === 0 || this.state === 'closed') return;
    const silentMs = Date.now() - this.lastActivity;
    if (silentMs >= this.replyTimeoutMs) {
      const midReply = this.parser.idle ? '' : ' (stopped in the middle of a reply)';
      this.fail(new NbdConnectionClosedError(`NBD server sent nothing for ${silentMs} ms with ${this.pending.size} request(s) pending${midReply}`));
    }
  };

  private constructor(stream: Duplex, info: Awaited<ReturnType<typeof negotiate>>['info'], closeTimeoutMs: number, replyTimeoutMs: number) {
    this.stream = stream;
    this.exportName = info.exportName;
    this.size = info.size;
    this.transmissionFlags = info.transmissionFlags;
    this.blockSize = Object.freeze({ ...info.blockSize });
    this.maxPayload = info.maxPayload;
    this.structuredReplies = info.structuredReplies;
    this.metaContexts = info.metaContexts;
    this.description = info.description;
    this.closeTimeoutMs = closeTimeoutMs;
    this.replyTimeoutMs = replyTimeoutMs;
    for (const [name, id] of info.metaContexts) this.contextNames.set(id, name);
    this.parser = new NbdReplyParser({ structuredReplies: info.structuredReplies, contextIds: info.metaContexts.values() });
    this.closed = new Promise((resolve) => (this.resolveClosed = resolve));
  }

  /** Performs the handshake on `stream` and returns a client in the transmission phase. */
  static async connect(stream: Duplex, options: NbdClientOptions = {}): Promise<NbdClient> {
    if (stream instanceof Socket) stream.setNoDelay(true);
    let negotiated: Awaited<ReturnType<typeof negotiate>>;
    try {
      negotiated = await negotiate(stream, options, options.handshakeTimeoutMs ?? 30_000);
    } catch (error) {
      stream.on('error', () => undefined);
      stream.destroy();
      throw error;
    }
    const client = new NbdClient(negotiated.stream, negotiated.info, options.closeTimeoutMs ?? 5_000, options.replyTimeoutMs ?? 300_000);
    client.attach(negotiated.leftover);
    return client;
  }

  get readOnly(): boolean {
    return (this.transmissionFlags & NBD_FLAG_READ_ONLY) !== 0;
  }
  get canFlush(): boolean {
    return (this.transmissionFlags & NBD_FLAG_SEND_FLUSH) !== 0;
  }
  get canFua(): boolean {
    return (this.transmissionFlags & NBD_FLAG_SEND_FUA) !== 0;
  }
  get canTrim(): boolean {
    return (this.transmissionFlags & NBD_FLAG_SEND_TRIM) !== 0;
  }
  get canWriteZeroes(): boolean {
    return (this.transmissionFlags & NBD_FLAG_SEND_WRITE_ZEROES) !== 0;
  }
  get canFastZero(): boolean {
    return (this.transmissionFlags & NBD_FLAG_SEND_FAST_ZERO) !== 0;
  }
  get canMultiConn(): boolean {
    return (this.transmissionFlags & NBD_FLAG_CAN_MULTI_CONN) !== 0;
  }
  get isOpen(): boolean {
    return this.state === 'open';
  }
  /** Requests sent and not yet answered. */
  get inFlight(): number {
    return this.pending.size;
  }

  /**
   * Reads [offset, offset+length). With `into`, the data lands in that buffer
   * (from index 0) and a view of it is returned; holes are zero-filled.
   * Requests longer than `pieceSize` (at most maxPayload) are split and sent together.
   */
  async read(offset: number, length: number, into?: Buffer, pieceSize = this.maxPayload): Promise<Buffer> {
    this.checkRange('READ', offset, length);
    if (into && into.length < length) throw new RangeError(`read buffer of ${into.length} bytes is smaller than ${length}`);
    if (!Number.isInteger(pieceSize) || pieceSize < 1) throw new RangeError(`read piece size must be a positive integer, not ${pieceSize}`);
    const dest = into ? into.subarray(0, length) : Buffer.allocUnsafe(length);
    if (length === 0) return dest;
    const step = Math.min(pieceSize, this.maxPayload);
    if (length <= step) {
      await this.send(NBD_CMD_READ, 0, offset, length, undefined, dest, 0);
      return dest;
    }
    const parts: Promise<void>[] = [];
    for (let done = 0; done < length; done += step) {
      const n = Math.min(step, length - done);
      parts.push(this.send(NBD_CMD_READ, 0, offset + done, n, undefined, dest, done));
    }
    await settleAll(parts);
    return dest;
  }

  /** Writes `data` at `offset` (split at maxPayload). The buffer must stay unchanged until the promise settles. */
  async write(offset: number, data: Buffer, options: WriteOptions = {}): Promise<void> {
    this.checkRange('WRITE', offset, data.length);
    const flags = this.fuaFlag('WRITE', offset, data.length, options);
    if (data.length === 0) return;
    if (data.length <= this.maxPayload) return this.send(NBD_CMD_WRITE, flags, offset, data.length, data);
    const parts: Promise<void>[] = [];
    for (let done = 0; done < data.length; done += this.maxPayload) {
      const n = Math.min(this.maxPayload, data.length - done);
      parts.push(this.send(NBD_CMD_WRITE, flags, offset + done, n, data.subarray(done, done + n)));
    }
    await settleAll(parts);
  }

  /**
   * NBD_CMD_WRITE_ZEROES over [offset, offset+length). Without noHole the
   * server may deallocate, but the range always reads back as zeroes (this is
   * not TRIM: a qcow2 overlay records zero clusters instead of exposing its backing file).
   */
  async writeZeroes(offset: number, length: number, options: WriteZeroesOptions = {}): Promise<void> {
    this.checkRange('WRITE_ZEROES', offset, length);
    if (!this.canWriteZeroes) throw new NbdCommandError('WRITE_ZEROES', offset, length, 95, 'server does not support WRITE_ZEROES', undefined, true);
    let flags = this.fuaFlag('WRITE_ZEROES', offset, length, options);
    if (options.noHole) flags |= NBD_CMD_FLAG_NO_HOLE;
    if (options.fastZero) {
      if (!this.canFastZero) throw new NbdCommandError('WRITE_ZEROES', offset, length, 95, 'server does not support FAST_ZERO', undefined, true);
      flags |= NBD_CMD_FLAG_FAST_ZERO;
    }
    if (length === 0) return;
    const step = this.nonPayloadStep();
    const parts: Promise<void>[] = [];
    for (let done = 0; done < length; done += step) {
      parts.push(this.send(NBD_CMD_WRITE_ZEROES, flags, offset + done, Math.min(step, length - done)));
    }
    await settleAll(parts);
  }

  /** NBD_CMD_FLUSH; resolves at once when the server has no write cache to flush (no NBD_FLAG_SEND_FLUSH). */
  async flush(): Promise<void> {
    this.checkOpen('FLUSH', 0, 0);
    if (!this.canFlush) return;
    return this.send(NBD_CMD_FLUSH, 0, 0, 0);
  }

  /**
   * One NBD_CMD_BLOCK_STATUS: extents per selected meta context name, in absolute
   * offsets. The server may describe less than the requested range (see blockStatusAll).
   */
  async blockStatus(offset: number, length: number, options: { reqOne?: boolean } = {}): Promise<Map<string, Extent[]>> {
    this.checkRange('BLOCK_STATUS', offset, length);
    if (this.metaContexts.size === 0) {
      throw new NbdCommandError('BLOCK_STATUS', offset, length, 22, 'no meta context was negotiated', undefined, true);
    }
    const extents = new Map<number, BlockStatusDescriptor[]>();
    const result = new Map<string, Extent[]>();
    if (length === 0) return result;
    length = Math.min(length, this.nonPayloadStep());
    await this.send(NBD_CMD_BLOCK_STATUS, options.reqOne ? NBD_CMD_FLAG_REQ_ONE : 0, offset, length, undefined, undefined, 0, extents);
    for (const [id, descriptors] of extents) {
      const list: Extent[] = new Array(descriptors.length);
      let at = offset;
      for (let i = 0; i < descriptors.length; i++) {
        list[i] = { offset: at, length: descriptors[i].length, flags: descriptors[i].flags };
        at += descriptors[i].length;
      }
      result.set(this.contextNames.get(id)!, list);
    }
    return result;
  }

  /**
   * Extents of the given meta contexts (default: all selected) covering exactly
   * [offset, offset+length): repeats BLOCK_STATUS until every context has
   * described the whole range, clipping what overshoots and merging neighbours with equal flags.
   */
  async blockStatusAll(offset: number, length: number, contexts: readonly string[] = [...this.metaContexts.keys()]): Promise<Map<string, Extent[]>> {
    for (const name of contexts) {
      if (!this.metaContexts.has(name)) {
        throw new NbdCommandError('BLOCK_STATUS', offset, length, 22, `meta context ${name} was not negotiated`, undefined, true);
      }
    }
    const out = new Map<string, Extent[]>(contexts.map((c) => [c, []]));
    const end = offset + length;
    let pos = offset;
    while (pos < end) {
      const reply = await this.blockStatus(pos, end - pos);
      let reach = end;
      for (const name of contexts) {
        const list = reply.get(name);
        if (!list || list.length === 0) {
          const error = new NbdProtocolError(`BLOCK_STATUS at ${pos} returned no extents for ${name}`);
          this.fail(error);
          throw error;
        }
        const last = list[list.length - 1];
        reach = Math.min(reach, last.offset + last.length);
      }
      for (const name of contexts) {
        const target = out.get(name)!;
        for (const e of reply.get(name)!) {
          if (e.offset >= reach) break;
          const len = Math.min(e.offset + e.length, reach) - e.offset;
          const prev = target[target.length - 1];
          if (prev && prev.flags === e.flags && prev.offset + prev.length === e.offset) prev.length += len;
          else target.push({ offset: e.offset, length: len, flags: e.flags });
        }
      }
      pos = reach;
    }
    return out;
  }

  /**
   * Clean close: waits for requests in flight, sends NBD_CMD_DISC, ends the
   * stream and waits (closeTimeoutMs at most) for the server to close it.
   */
  close(): Promise<void> {
    if (this.closingPromise) return this.closingPromise;
    if (this.state === 'closed') return Promise.resolve();
    this.state = 'closing';
    this.closingPromise = (async () => {
      const deadline = setTimeout(() => this.destroy(), this.closeTimeoutMs);
      try {
        if (this.pending.size > 0) {
          await new Promise<void>((resolve) => {
            this.drained = resolve;
            void this.closed.then(() => resolve());
          });
        }
        if (this.state === 'closing') {
          this.stream.write(this.header(NBD_CMD_DISC, 0, 0, 0, 0));
          this.stream.end();
          await this.closed;
        }
      } finally {
        clearTimeout(deadline);
      }
    })();
    return this.closingPromise;
  }

  /** Hard close: rejects everything pending with `error` (or a connection-closed error). */
  destroy(error?: Error): void {
    if (this.state === 'closed') return;
    if (error) this.fail(error);
    else if (this.state === 'closing' && this.pending.size === 0) this.finishClose(undefined);
    else this.fail(new NbdConnectionClosedError('NBD connection destroyed by the client'));
  }

  private attach(leftover: Buffer): void {
    const direct = directReadControl(this.stream);
    if (direct) {
      this.readScratch = Buffer.allocUnsafe(16 * 1024);
      direct.install({ nextBuffer: this.nextReadBuffer, onRead: this.onDirectRead });
    }
    this.stream.on('data', this.onData);
    this.stream.on('end', this.onEnd);
    this.stream.on('close', this.onEnd);
    this.stream.on('error', this.onError);
    if (this.replyTimeoutMs > 0) {
      this.watchdog = setInterval(this.checkReplies, Math.max(10, Math.min(1000, this.replyTimeoutMs / 4)));
      this.watchdog.unref();
    }
    if (leftover.length) this.onData(leftover);
    this.stream.resume();
  }

  private checkOpen(command: string, offset: number, length: number): void {
    if (this.state !== 'open') {
      const why = this.closeReason ? `: ${this.closeReason.message}` : '';
      throw new NbdConnectionClosedError(`NBD ${command} at offset ${offset} length ${length}: connection is ${this.state}${why}`, this.closeReason);
    }
  }

  private checkRange(command: string, offset: number, length: number): void {
    this.checkOpen(command, offset, length);
    if (!Number.isSafeInteger(offset) || offset < 0 || !Number.isSafeInteger(length) || length < 0) {
      throw new NbdCommandError(command, offset, length, 22, 'offset and length must be non-negative integers', undefined, true);
    }
    if (offset + length > this.size) {
      throw new NbdCommandError(command, offset, length, 22, `range ends beyond the export size ${this.size}`, undefined, true);
    }
    const min = this.blockSize.minimum;
    if (min > 1 && (offset % min !== 0 || (length % min !== 0 && offset + length !== this.size))) {
      throw new NbdCommandError(command, offset, length, 22, `not aligned to the server's minimum block size ${min}`, undefined, true);
    }
  }

  private fuaFlag(command: string, offset: number, length: number, options: WriteOptions): number {
    if (!options.fua) return 0;
    if (!this.canFua) throw new NbdCommandError(command, offset, length, 95, 'server does not support FUA', undefined, true);
    return NBD_CMD_FLAG_FUA;
  }

  /** Step for commands without payload: 1 GiB, a multiple of any legal minimum block size. */
  private nonPayloadStep(): number {
    return MAX_NON_PAYLOAD_LENGTH;
  }

  private header(type: number, flags: number, cookie: number, offset: number, length: number): Buffer {
    const h = Buffer.allocUnsafe(REQUEST_HEADER_SIZE);
    h.writeUInt32BE(NBD_REQUEST_MAGIC, 0);
    h.writeUInt16BE(flags, 4);
    h.writeUInt16BE(type, 6);
    h.writeUInt32BE(Math.floor(cookie / TWO_32), 8);
    h.writeUInt32BE(cookie >>> 0, 12);
    h.writeUInt32BE(Math.floor(offset / TWO_32), 16);
    h.writeUInt32BE(offset >>> 0, 20);
    h.writeUInt32BE(length, 24);
    return h;
  }

  private send(
    type: number,
    flags: number,
    offset: number,
    length: number,
    payload?: Buffer,
    dest?: Buffer,
    destBase = 0,
    extents?: Map<number, BlockStatusDescriptor[]>,
  ): Promise<void> {
    if (this.state !== 'open') {
      return Promise.reject(new NbdConnectionClosedError(`NBD ${nbdCommandName(type)}: connection is ${this.state}`, this.closeReason));
    }
    const cookie = this.nextCookie++;
    if (this.pending.size === 0) this.lastActivity = Date.now();
    return new Promise<void>((resolve, reject) => {
      this.pending.set(cookie, { type, offset, length, resolve, reject, dest, destBase, extents });
      this.parser.expect(cookie, { type, offset, length });
      // Requests issued in the same tick leave in one writev: cork now, uncork once the tick's work is done.
      if (!this.corked) {
        this.corked = true;
        this.stream.cork();
        process.nextTick(this.uncork);
      }
      this.stream.write(this.header(type, flags, cookie, offset, length));
      if (payload) this.stream.write(payload);
    });
  }

  private fail(error: Error): void {
    if (this.state === 'closed') return;
    clearInterval(this.watchdog);
    this.state = 'closed';
    this.closeReason = error;
    const pending = [...this.pending.values()];
    this.pending.clear();
    this.stream.destroy();
    for (const p of pending) p.reject(error);
    this.drained?.();
    this.resolveClosed(error);
  }

  private finishClose(reason: Error | undefined): void {
    if (this.state === 'closed') return;
    clearInterval(this.watchdog);
    this.state = 'closed';
    this.closeReason = reason;
    this.stream.destroy();
    this.resolveClosed(reason);
  }
}

/** Like Promise.all, but waits for every part so no rejection is left unobserved; rethrows the first error. */
async function settleAll(parts: Promise<void>[]): Promise<void> {
  const results = await Promise.allSettled(parts);
  for (const r of results) if (r.status === 'rejected') throw r.reason;
}
