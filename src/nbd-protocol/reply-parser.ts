import {
  NBD_CMD_BLOCK_STATUS,
  NBD_CMD_READ,
  NBD_EXTENDED_REPLY_MAGIC,
  NBD_MAX_STRING,
  NBD_REPLY_FLAG_DONE,
  NBD_REPLY_TYPE_BLOCK_STATUS,
  NBD_REPLY_TYPE_ERROR,
  NBD_REPLY_TYPE_ERROR_BIT,
  NBD_REPLY_TYPE_ERROR_OFFSET,
  NBD_REPLY_TYPE_NONE,
  NBD_REPLY_TYPE_OFFSET_DATA,
  NBD_REPLY_TYPE_OFFSET_HOLE,
  NBD_SIMPLE_REPLY_MAGIC,
  NBD_STRUCTURED_REPLY_MAGIC,
  SIMPLE_REPLY_HEADER_SIZE,
  STRUCTURED_REPLY_HEADER_SIZE,
} from './constants';
import { nbdCommandName, NbdProtocolError } from './errors';

/** What the parser must know about a request to decode and check its reply. */
export interface ExpectedReply {
  type: number;
  offset: number;
  length: number;
}

export interface BlockStatusDescriptor {
  length: number;
  flags: number;
}

/**
 * Receives decoded replies. `data` gets a view into the parser's input that is
 * only valid during the call (copy it out); offsets are absolute export offsets.
 * `error` may be followed by more chunks; `done` is always the last call for a cookie.
 */
export interface ReplySink {
  data(cookie: number, offset: number, data: Buffer): void;
  hole(cookie: number, offset: number, length: number): void;
  blockStatus(cookie: number, contextId: number, descriptors: BlockStatusDescriptor[]): void;
  error(cookie: number, errno: number, message: string, errorOffset?: number): void;
  done(cookie: number): void;
}

export interface ReplyParserOptions {
  structuredReplies: boolean;
  /** Meta context ids negotiated; a BLOCK_STATUS chunk naming another id is a protocol error. */
  contextIds?: Iterable<number>;
  /** Largest BLOCK_STATUS chunk payload accepted (default 16 MiB + 4: two million extents). */
  maxBlockStatusPayload?: number;
}

interface Tracked extends ExpectedReply {
  /** A structured chunk arrived (a simple reply may then no longer follow). */
  structured: boolean;
  failed: boolean;
  covered: number;
  /** Disjoint sorted [start, end) pairs already covered by data or hole chunks of a READ. */
  ranges: number[];
  contexts?: Set<number>;
}

const S_HEADER = 0;
const S_SIMPLE_DATA = 1;
const S_DATA_OFFSET = 2;
const S_CHUNK_DATA = 3;
const S_PAYLOAD = 4;
const S_FAILED = 5;

const TWO_32 = 4294967296;
const MAX_ERROR_PAYLOAD = 6 + NBD_MAX_STRING + 8;
const DEFAULT_MAX_BLOCK_STATUS_PAYLOAD = 4 + 8 * 2 * 1024 * 1024;

/**
 * Incremental, allocation-light parser of the transmission-phase byte stream
 * (simple replies and structured reply chunks). Pure: it only sees the Buffers
 * pushed into it and the requests registered with expect(); it never touches a
 * socket or a timer. Any violation throws NbdProtocolError and leaves the parser
 * failed (every later push throws too).
 */
export class NbdReplyParser {
  private readonly tracked = new Map<number, Tracked>();
  private readonly contextIds?: Set<number>;
  private readonly maxBlockStatusPayload: number;
  private state = S_HEADER;
  private readonly scratch = Buffer.alloc(STRUCTURED_REPLY_HEADER_SIZE);
  private scratchLen = 0;
  private failure?: NbdProtocolError;

  // Current chunk.
  private cookie = 0;
  private chunkType = 0;
  private chunkDone = false;
  private chunkLength = 0;
  private remaining = 0;
  private dataOffset = 0;
  private payloadParts: Buffer[] = [];
  private payloadGot = 0;

  constructor(private readonly options: ReplyParserOptions) {
    this.contextIds = options.contextIds ? new Set(options.contextIds) : undefined;
    this.maxBlockStatusPayload = options.maxBlockStatusPayload ?? DEFAULT_MAX_BLOCK_STATUS_PAYLOAD;
  }

  /** Register a request whose reply may now arrive. */
  expect(cookie: number, request: ExpectedReply): void {
    if (this.tracked.has(cookie)) throw new Error(`cookie ${cookie} is already in flight`);
    this.tracked.set(cookie, { type: request.type, offset: request.offset, length: request.length, structured: false, failed: false, covered: 0, ranges: [] });
  }

  /** Bytes left in the READ data run being received (0 when the next bytes are not READ data). */
  get dataRemaining(): number {
    return this.state === S_SIMPLE_DATA || this.state === S_CHUNK_DATA ? this.remaining : 0;
  }

  /** Cookie of the current data run (meaningful while dataRemaining > 0). */
  get dataCookie(): number {
    return this.cookie;
  }

  /** Absolute export offset of the next byte of the current data run (meaningful while dataRemaining > 0). */
  get dataNextOffset(): number {
    return this.dataOffset;
  }

  /**
   * Zero-copy receive: the caller stored the next `n` bytes of the current data
   * run at their destination itself (e.g. read them from the socket straight
   * into the READ buffer). Advances as push() would, without a sink.data call.
   */
  skipData(n: number, sink: ReplySink): void {
    if (this.state === S_FAILED) throw this.failure ?? new NbdProtocolError('parser already failed');
    if (n <= 0 || n > this.dataRemaining) throw new Error(`skipData(${n}) outside the current data run of ${this.dataRemaining} bytes`);
    try {
      this.dataOffset += n;
      this.remaining -= n;
      if (this.remaining === 0) {
        this.state = S_HEADER;
        if (this.chunkDone) this.finish(this.cookie, sink);
      }
    } catch (error) {
      this.state = S_FAILED;
      this.failure = error instanceof NbdProtocolError ? error : new NbdProtocolError(`reply handling failed: ${String(error)}`);
      throw error;
    }
  }

  /** Requests registered and not yet completely answered. */
  get inFlight(): number {
    return this.tracked.size;
  }

  get failed(): boolean {
    return this.state === S_FAILED;
  }

  /** True between messages (no partial header or payload buffered). */
  get idle(): boolean {
    return this.state === S_HEADER && this.scratchLen === 0;
  }

  /** Parses `chunk` (which may be reused by the caller once this returns: whatever must outlive the call is copied). */
  push(chunk: Buffer, sink: ReplySink): void {
    if (this.state === S_FAILED) throw this.failure ?? new NbdProtocolError('parser already failed');
    try {
      this.consume(chunk, sink);
    } catch (error) {
      this.state = S_FAILED;
      this.failure = error instanceof NbdProtocolError ? error : new NbdProtocolError(`reply handling failed: ${String(error)}`);
      this.payloadParts = [];
      throw error;
    }
  }

  private consume(chunk: Buffer, sink: ReplySink): void {
    let pos = 0;
    const end = chunk.length;
    while (pos < end) {
      switch (this.state) {
        case S_HEADER: {
          const avail = end - pos;
          if (this.scratchLen === 0 && avail >= 4) {
            const magic = chunk.readUInt32BE(pos);
            const size = headerSize(magic);
            if (avail >= size) {
              this.onHeader(chunk, pos, magic, sink);
              pos += size;
              break;
            }
          }
          // Slow path: the header straddles input buffers.
          let need = 4;
          if (this.scratchLen >= 4) need = headerSize(this.scratch.readUInt32BE(0));
          const n = Math.min(need - this.scratchLen, avail);
          chunk.copy(this.scratch, this.scratchLen, pos, pos + n);
          this.scratchLen += n;
          pos += n;
          if (this.scratchLen === 4 && need === 4) headerSize(this.scratch.readUInt32BE(0)); // reject bad magic early
          if (this.scratchLen >= 4) {
            const magic = this.scratch.readUInt32BE(0);
            if (this.scratchLen === headerSize(magic)) {
              this.scratchLen = 0;
              this.onHeader(this.scratch, 0, magic, sink);
            }
          }
          break;
        }
        case S_SIMPLE_DATA:
        case S_CHUNK_DATA: {
          const n = Math.min(this.remaining, end - pos);
          const at = this.dataOffset;
          this.dataOffset += n;
          this.remaining -= n;
          sink.data(this.cookie, at, chunk.subarray(pos, pos + n));
          pos += n;
          if (this.remaining === 0) {
            this.state = S_HEADER;
            if (this.chunkDone) this.finish(this.cookie, sink);
          }
          break;
        }
        case S_DATA_OFFSET: {
          const n = Math.min(8 - this.scratchLen, end - pos);
          chunk.copy(this.scratch, this.scratchLen, pos, pos + n);
          this.scratchLen += n;
          pos += n;
          if (this.scratchLen === 8) {
            this.scratchLen = 0;
            this.onDataOffset(readU64(this.scratch, 0));
          }
          break;
        }
        case S_PAYLOAD: {
          const n = Math.min(this.chunkLength - this.payloadGot, end - pos);
          const whole = this.payloadGot === 0 && n === this.chunkLength;
          // A payload completed by this very buffer is used in place; pieces that must outlive it are copied.
          this.payloadParts.push(whole ? chunk.subarray(pos, pos + n) : Buffer.from(chunk.subarray(pos, pos + n)));
          this.payloadGot += n;
          pos += n;
          if (this.payloadGot === this.chunkLength) {
            const payload = this.payloadParts.length === 1 ? this.payloadParts[0] : Buffer.concat(this.payloadParts, this.payloadGot);
            this.payloadParts = [];
            this.payloadGot = 0;
            this.state = S_HEADER;
            this.onPayload(payload, sink);
          }
          break;
        }
        default:
          throw this.failure ?? new NbdProtocolError('parser already failed');
      }
    }
  }

  private lookup(cookie: number, what: string): Tracked {
    const tracked = this.tracked.get(cookie);
    if (!tracked) throw new NbdProtocolError(`${what} for unknown cookie ${cookie}`);
    return tracked;
  }

  private onHeader(buf: Buffer, at: number, magic: number, sink: ReplySink): void {
    const cookie = buf.readUInt32BE(at + 8) * TWO_32 + buf.readUInt32BE(at + 12);
    if (magic === NBD_SIMPLE_REPLY_MAGIC) {
      const errno = buf.readUInt32BE(at + 4);
      const t = this.lookup(cookie, 'simple reply');
      const name = nbdCommandName(t.type);
      if (t.structured) throw new NbdProtocolError(`simple reply for cookie ${cookie} (${name}) after structured chunks`);
      if (errno !== 0) {
        t.failed = true;
        sink.error(cookie, errno, '');
        this.finish(cookie, sink);
        return;
      }
      if (t.type === NBD_CMD_READ) {
        if (this.options.structuredReplies) {
          throw new NbdProtocolError(`successful simple reply to READ cookie ${cookie} although structured replies were negotiated`);
        }
        t.covered = t.length;
        if (t.length === 0) {
          this.finish(cookie, sink);
          return;
        }
        this.cookie = cookie;
        this.remaining = t.length;
        this.dataOffset = t.offset;
        this.chunkDone = true;
        this.state = S_SIMPLE_DATA;
        return;
      }
      if (t.type === NBD_CMD_BLOCK_STATUS) {
        throw new NbdProtocolError(`successful simple reply to BLOCK_STATUS cookie ${cookie}: extents need a structured reply`);
      }
      this.finish(cookie, sink);
      return;
    }

    // Structured chunk.
    const flags = buf.readUInt16BE(at + 4);
    const type = buf.readUInt16BE(at + 6);
    const length = buf.readUInt32BE(at + 16);
    const t = this.lookup(cookie, `structured reply chunk (type ${type})`);
    if (!this.options.structuredReplies) {
      throw new NbdProtocolError(`structured reply chunk for cookie ${cookie} although structured replies were not negotiated`);
    }
    t.structured = true;
    this.cookie = cookie;
    this.chunkType = type;
    this.chunkDone = (flags & NBD_REPLY_FLAG_DONE) !== 0;
    this.chunkLength = length;
    const name = nbdCommandName(t.type);
    switch (type) {
      case NBD_REPLY_TYPE_NONE:
        if (length !== 0) throw new NbdProtocolError(`NONE chunk with payload length ${length} (cookie ${cookie})`);
        if (!this.chunkDone) throw new NbdProtocolError(`NONE chunk without the DONE flag (cookie ${cookie})`);
        this.finish(cookie, sink);
        return;
      case NBD_REPLY_TYPE_OFFSET_DATA:
        if (t.type !== NBD_CMD_READ) throw new NbdProtocolError(`OFFSET_DATA chunk in reply to ${name} (cookie ${cookie})`);
        if (length <= 8) throw new NbdProtocolError(`OFFSET_DATA chunk with length ${length}: at least 9 required (cookie ${cookie})`);
        if (length - 8 > t.length) {
          throw new NbdProtocolError(`OFFSET_DATA chunk carries ${length - 8} bytes, more than the ${t.length} requested (cookie ${cookie})`);
        }
        this.remaining = length - 8;
        this.scratchLen = 0;
        this.state = S_DATA_OFFSET;
        return;
      case NBD_REPLY_TYPE_OFFSET_HOLE:
        if (t.type !== NBD_CMD_READ) throw new NbdProtocolError(`OFFSET_HOLE chunk in reply to ${name} (cookie ${cookie})`);
        if (length !== 12) throw new NbdProtocolError(`OFFSET_HOLE chunk with length ${length}, expected 12 (cookie ${cookie})`);
        break;
      case NBD_REPLY_TYPE_BLOCK_STATUS:
        if (t.type !== NBD_CMD_BLOCK_STATUS) throw new NbdProtocolError(`BLOCK_STATUS chunk in reply to ${name} (cookie ${cookie})`);
        if (length < 12 || (length - 4) % 8 !== 0) {
          throw new NbdProtocolError(`BLOCK_STATUS chunk length ${length} is not 4 + 8*n with n >= 1 (cookie ${cookie})`);
        }
        if (length > this.maxBlockStatusPayload) {
          throw new NbdProtocolError(`BLOCK_STATUS chunk length ${length} exceeds the limit ${this.maxBlockStatusPayload} (cookie ${cookie})`);
        }
        break;
      default:
        if ((type & NBD_REPLY_TYPE_ERROR_BIT) === 0) {
          throw new NbdProtocolError(`unknown structured reply chunk type ${type} (cookie ${cookie})`);
        }
        if (length < 6 || length > MAX_ERROR_PAYLOAD) {
          throw new NbdProtocolError(`error chunk (type ${type}) with impossible length ${length} (cookie ${cookie})`);
        }
    }
    this.payloadParts = [];
    this.payloadGot = 0;
    this.state = S_PAYLOAD;
  }

  private onDataOffset(offset: number): void {
    const t = this.lookup(this.cookie, 'OFFSET_DATA chunk');
    this.coverRange(t, offset, this.remaining, 'OFFSET_DATA');
    this.dataOffset = offset;
    this.state = S_CHUNK_DATA;
  }

  private onPayload(payload: Buffer, sink: ReplySink): void {
    const cookie = this.cookie;
    const t = this.lookup(cookie, 'chunk payload');
    switch (this.chunkType) {
      case NBD_REPLY_TYPE_OFFSET_HOLE: {
        const offset = readU64(payload, 0);
        const size = payload.readUInt32BE(8);
        if (size === 0) throw new NbdProtocolError(`OFFSET_HOLE chunk with size 0 (cookie ${cookie})`);
        this.coverRange(t, offset, size, 'OFFSET_HOLE');
        sink.hole(cookie, offset, size);
        break;
      }
      case NBD_REPLY_TYPE_BLOCK_STATUS: {
        const contextId = payload.readUInt32BE(0);
        if (this.contextIds && !this.contextIds.has(contextId)) {
          throw new NbdProtocolError(`BLOCK_STATUS chunk for meta context id ${contextId}, which was not negotiated (cookie ${cookie})`);
        }
        const seen = (t.contexts ??= new Set());
        if (seen.has(contextId)) throw new NbdProtocolError(`second BLOCK_STATUS chunk for context ${contextId} (cookie ${cookie})`);
        seen.add(contextId);
        const count = (payload.length - 4) / 8;
        const descriptors: BlockStatusDescriptor[] = new Array(count);
        for (let i = 0, p = 4; i < count; i++, p += 8) {
          const length = payload.readUInt32BE(p);
          if (length === 0) throw new NbdProtocolError(`BLOCK_STATUS extent ${i} has length 0 (cookie ${cookie})`);
          descriptors[i] = { length, flags: payload.readUInt32BE(p + 4) };
        }
        sink.blockStatus(cookie, contextId, descriptors);
        break;
      }
      default: {
        // Error chunks (NBD_REPLY_TYPE_ERROR, _ERROR_OFFSET, and unknown types with the error bit).
        const errno = payload.readUInt32BE(0);
        const messageLength = payload.readUInt16BE(4);
        if (errno === 0) throw new NbdProtocolError(`error chunk with error value 0 (cookie ${cookie})`);
        let errorOffset: number | undefined;
        if (this.chunkType === NBD_REPLY_TYPE_ERROR) {
          if (messageLength !== payload.length - 6) {
            throw new NbdProtocolError(`ERROR chunk message length ${messageLength} does not match chunk length ${payload.length} (cookie ${cookie})`);
          }
        } else if (this.chunkType === NBD_REPLY_TYPE_ERROR_OFFSET) {
          if (messageLength + 14 !== payload.length) {
            throw new NbdProtocolError(`ERROR_OFFSET chunk message length ${messageLength} does not match chunk length ${payload.length} (cookie ${cookie})`);
          }
          errorOffset = readU64(payload, 6 + messageLength);
          if (errorOffset < t.offset || errorOffset >= t.offset + Math.max(t.length, 1)) {
            throw new NbdProtocolError(`ERROR_OFFSET ${errorOffset} lies outside the request ${t.offset}+${t.length} (cookie ${cookie})`);
          }
        } else if (messageLength > payload.length - 6) {
          throw new NbdProtocolError(`error chunk (type ${this.chunkType}) message length ${messageLength} exceeds its payload (cookie ${cookie})`);
        }
        t.failed = true;
        sink.error(cookie, errno, payload.toString('utf8', 6, 6 + messageLength), errorOffset);
      }
    }
    if (this.chunkDone) this.finish(cookie, sink);
  }

  /** Records that [offset, offset+length) of a READ is answered; rejects ranges outside the request or overlapping earlier chunks. */
  private coverRange(t: Tracked, offset: number, length: number, what: string): void {
    const end = offset + length;
    if (offset < t.offset || end > t.offset + t.length) {
      throw new NbdProtocolError(`${what} chunk ${offset}+${length} lies outside the request ${t.offset}+${t.length} (cookie ${this.cookie})`);
    }
    const r = t.ranges;
    // Find insertion point: first range whose start is >= offset (chunks usually arrive in order, so scan from the back).
    let i = r.length;
    while (i > 0 && r[i - 2] > offset) i -= 2;
    if ((i > 0 && r[i - 1] > offset) || (i < r.length && r[i] < end)) {
      throw new NbdProtocolError(`${what} chunk ${offset}+${length} overlaps data already received (cookie ${this.cookie})`);
    }
    const joinsLeft = i > 0 && r[i - 1] === offset;
    const joinsRight = i < r.length && r[i] === end;
    if (joinsLeft && joinsRight) {
      r[i - 1] = r[i + 1];
      r.splice(i, 2);
    } else if (joinsLeft) {
      r[i - 1] = end;
    } else if (joinsRight) {
      r[i] = offset;
    } else {
      r.splice(i, 0, offset, end);
    }
    t.covered += length;
  }

  private finish(cookie: number, sink: ReplySink): void {
    const t = this.lookup(cookie, 'final chunk');
    this.tracked.delete(cookie);
    if (!t.failed) {
      if (t.type === NBD_CMD_READ && t.covered !== t.length) {
        throw new NbdProtocolError(`READ reply for cookie ${cookie} ended after ${t.covered} of ${t.length} bytes`);
      }
      if (t.type === NBD_CMD_BLOCK_STATUS && !t.contexts) {
        throw new NbdProtocolError(`BLOCK_STATUS reply for cookie ${cookie} ended without any extents`);
      }
    }
    sink.done(cookie);
  }
}

function headerSize(magic: number): number {
  if (magic === NBD_SIMPLE_REPLY_MAGIC) return SIMPLE_REPLY_HEADER_SIZE;
  if (magic === NBD_STRUCTURED_REPLY_MAGIC) return STRUCTURED_REPLY_HEADER_SIZE;
  if (magic === NBD_EXTENDED_REPLY_MAGIC) throw new NbdProtocolError('extended-header reply received although extended headers were not negotiated');
  throw new NbdProtocolError(`bad reply magic 0x${magic.toString(16).padStart(8, '0')}`);
}

/** A u64 as a JS number; values beyond 2^53 cannot be offsets of a real export and are rejected. */
function readU64(buf: Buffer, at: number): number {
  const hi = buf.readUInt32BE(at);
  if (hi >= 0x200000) throw new NbdProtocolError(`64-bit value 0x${hi.toString(16)}${buf.readUInt32BE(at + 4).toString(16).padStart(8, '0')} is out of range`);
  return hi * TWO_32 + buf.readUInt32BE(at + 4);
}
