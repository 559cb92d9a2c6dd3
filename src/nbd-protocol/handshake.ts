import type { Duplex } from 'node:stream';
import {
  DEFAULT_MAX_PAYLOAD,
  NBD_FLAG_C_FIXED_NEWSTYLE,
  NBD_FLAG_C_NO_ZEROES,
  NBD_FLAG_FIXED_NEWSTYLE,
  NBD_FLAG_NO_ZEROES,
  NBD_INFO_BLOCK_SIZE,
  NBD_INFO_DESCRIPTION,
  NBD_INFO_EXPORT,
  NBD_INFO_NAME,
  NBD_INIT_MAGIC,
  NBD_MAX_STRING,
  NBD_OLDSTYLE_MAGIC,
  NBD_OPT_EXPORT_NAME,
  NBD_OPT_GO,
  NBD_OPT_SET_META_CONTEXT,
  NBD_OPT_STARTTLS,
  NBD_OPT_STRUCTURED_REPLY,
  NBD_OPTION_REPLY_MAGIC,
  NBD_OPTS_MAGIC,
  NBD_REP_ACK,
  NBD_REP_ERR_UNSUP,
  NBD_REP_FLAG_ERROR,
  NBD_REP_INFO,
  NBD_REP_META_CONTEXT,
  QEMU_DIRTY_BITMAP_PREFIX,
} from './constants';
import { NbdConnectionClosedError, NbdHandshakeError, NbdProtocolError, optionReplyErrorName } from './errors';

export interface HandshakeOptions {
  /** Export to attach to; '' is the server's default export. */
  exportName?: string;
  /** Meta contexts to select (e.g. 'base:allocation', 'qemu:dirty-bitmap:b1'); each must be offered or the handshake fails. */
  metaContexts?: readonly string[];
  /** Negotiate structured replies (default true; required for meta contexts and for sparse reads). */
  structuredReplies?: boolean;
  /**
   * Upgrades the connection to TLS (NBD_OPT_STARTTLS) before any other option, so the export name,
   * the options and all data travel encrypted. Given the plain stream, returns the TLS stream once
   * its handshake is done; a server that refuses STARTTLS fails the connection (no silent plain text).
   */
  startTls?: (plain: Duplex) => Promise<Duplex>;
}

export interface BlockSizeConstraints {
  minimum: number;
  preferred: number;
  maximum: number;
  /** False when the server sent no NBD_INFO_BLOCK_SIZE and the spec defaults apply. */
  advertised: boolean;
}

export interface NegotiatedExport {
  exportName: string;
  size: number;
  transmissionFlags: number;
  blockSize: BlockSizeConstraints;
  /** Largest READ/WRITE payload this client sends. */
  maxPayload: number;
  structuredReplies: boolean;
  /** Selected meta context name -> id. */
  metaContexts: Map<string, number>;
  description?: string;
}

const MAX_OPTION_REPLY = 1024 * 1024;
const TWO_32 = 4294967296;

/** Reads exact byte counts from a stream during option haggling, then hands the stream over. */
class HandshakeReader {
  private chunks: Buffer[] = [];
  private buffered = 0;
  private ended?: Error;
  private waiter?: { need: number; resolve: (b: Buffer) => void; reject: (e: Error) => void };

  private readonly onData = (chunk: Buffer) => {
    // Copied: the stream may reuse the buffer once the event returns (see connectSocket).
    this.chunks.push(Buffer.from(chunk));
    this.buffered += chunk.length;
    this.pump();
  };
  private readonly onEnd = () => this.end(new NbdConnectionClosedError('server closed the connection during the NBD handshake'));
  private readonly onError = (error: Error) => this.end(new NbdConnectionClosedError(`connection failed during the NBD handshake: ${error.message}`, error));

  constructor(private readonly stream: Duplex) {
    stream.on('data', this.onData);
    stream.on('end', this.onEnd);
    stream.on('close', this.onEnd);
    stream.on('error', this.onError);
  }

  read(need: number): Promise<Buffer> {
    if (this.waiter) throw new Error('concurrent handshake reads');
    return new Promise((resolve, reject) => {
      this.waiter = { need, resolve, reject };
      this.pump();
    });
  }

  fail(error: Error): void {
    this.end(error);
  }

  /** Stops reading (the stream stays paused) and returns whatever arrived beyond the handshake. */
  detach(): Buffer {
    this.stream.pause();
    this.stream.off('data', this.onData);
    this.stream.off('end', this.onEnd);
    this.stream.off('close', this.onEnd);
    this.stream.off('error', this.onError);
    const rest = Buffer.concat(this.chunks, this.buffered);
    this.chunks = [];
    this.buffered = 0;
    return rest;
  }

  private end(error: Error): void {
    this.ended ??= error;
    this.pump();
  }

  private pump(): void {
    const w = this.waiter;
    if (!w) return;
    if (this.buffered >= w.need) {
      const all = this.chunks.length === 1 ? this.chunks[0] : Buffer.concat(this.chunks, this.buffered);
      const out = Buffer.from(all.subarray(0, w.need));
      const rest = all.subarray(w.need);
      this.chunks = rest.length ? [rest] : [];
      this.buffered = rest.length;
      this.waiter = undefined;
      w.resolve(out);
    } else if (this.ended) {
      this.waiter = undefined;
      w.reject(this.ended);
    }
  }
}

interface OptionReply {
  type: number;
  data: Buffer;
}

function optionRequest(option: number, data: Buffer = Buffer.alloc(0)): Buffer {
  const header = Buffer.allocUnsafe(16);
  header.writeBigUInt64BE(NBD_OPTS_MAGIC, 0);
  header.writeUInt32BE(option, 8);
  header.writeUInt32BE(data.length, 12);
  return Buffer.concat([header, data]);
}

function lengthPrefixed(text: string, width: 2 | 4 = 4): Buffer {
  const bytes = Buffer.from(text, 'utf8');
  if (bytes.length > NBD_MAX_STRING) throw new NbdHandshakeError(`string longer than ${NBD_MAX_STRING} bytes: ${text.slice(0, 40)}...`);
  const out = Buffer.allocUnsafe(width + bytes.length);
  if (width === 4) out.writeUInt32BE(bytes.length, 0);
  else out.writeUInt16BE(bytes.length, 0);
  bytes.copy(out, width);
  return out;
}

function isPowerOfTwo(n: number): boolean {
  return n > 0 && (n & (n - 1)) === 0;
}

function validateBlockSize(min: number, preferred: number, max: number): BlockSizeConstraints {
  if (!isPowerOfTwo(min) || min > 65536) throw new NbdProtocolError(`server minimum block size ${min} is not a power of two between 1 and 64 KiB`);
  if (!isPowerOfTwo(preferred) || preferred < min) throw new NbdProtocolError(`server preferred block size ${preferred} is not a power of two >= minimum ${min}`);
  if (max !== 0xffffffff && (max < min || max % min !== 0)) {
    throw new NbdProtocolError(`server maximum block size ${max} is not a multiple of the minimum ${min}`);
  }
  return { minimum: min, preferred, maximum: max, advertised: true };
}

/**
 * Fixed-newstyle negotiation on a fresh stream: structured replies, meta
 * contexts and NBD_OPT_GO (falling back to NBD_OPT_EXPORT_NAME on servers
 * without GO). Returns what was agreed plus any bytes read past the handshake.
 */
export async function negotiate(plain: Duplex, options: HandshakeOptions = {}, timeoutMs = 30_000): Promise<{ info: NegotiatedExport; leftover: Buffer; stream: Duplex }> {
  const exportName = options.exportName ?? '';
  const wantedContexts = [...new Set(options.metaContexts ?? [])];
  const wantStructured = options.structuredReplies !== false || wantedContexts.length > 0;
  let stream = plain;
  let reader = new HandshakeReader(stream);
  let timedOut = false;
  const timer = setTimeout(() => {
    timedOut = true;
    reader.fail(new NbdConnectionClosedError(`NBD handshake did not complete within ${timeoutMs} ms`));
    stream.destroy();
  }, timeoutMs);
  const send = (buf: Buffer) => {
    stream.write(buf);
  };

  const readReply = async (option: number): Promise<OptionReply> => {
    const header = await reader.read(20);
    if (header.readBigUInt64BE(0) !== NBD_OPTION_REPLY_MAGIC) {
      throw new NbdProtocolError(`bad option reply magic 0x${header.readBigUInt64BE(0).toString(16)}`);
    }
    const replyOption = header.readUInt32BE(8);
    if (replyOption !== option) throw new NbdProtocolError(`option reply for option ${replyOption} while waiting for option ${option}`);
    const type = header.readUInt32BE(12);
    const length = header.readUInt32BE(16);
    if (length > MAX_OPTION_REPLY) throw new NbdProtocolError(`option reply of ${length} bytes exceeds ${MAX_OPTION_REPLY}`);
    const data = length ? await reader.read(length) : Buffer.alloc(0);
    return { type, data };
  };

  const optionError = (what: string, reply: OptionReply): NbdHandshakeError => {
    const name = optionReplyErrorName(reply.type);
    const message = reply.data.length ? `: ${reply.data.toString('utf8')}` : '';
    return new NbdHandshakeError(`${what} refused by server with ${name}${message}`, name);
  };

  try {
    const greeting = await reader.read(18);
    if (greeting.readBigUInt64BE(0) !== NBD_INIT_MAGIC) {
      throw new NbdProtocolError(`not an NBD server: bad initial magic 0x${greeting.readBigUInt64BE(0).toString(16)}`);
    }
    const second = greeting.readBigUInt64BE(8);
    if (second === NBD_OLDSTYLE_MAGIC) throw new NbdHandshakeError('server speaks the oldstyle NBD handshake, which is not supported');
    if (second !== NBD_OPTS_MAGIC) throw new NbdProtocolError(`bad handshake magic 0x${second.toString(16)}`);
    const handshakeFlags = greeting.readUInt16BE(16);
    const fixed = (handshakeFlags & NBD_FLAG_FIXED_NEWSTYLE) !== 0;
    const noZeroes = (handshakeFlags & NBD_FLAG_NO_ZEROES) !== 0;
    const clientFlags = Buffer.allocUnsafe(4);
    clientFlags.writeUInt32BE((fixed ? NBD_FLAG_C_FIXED_NEWSTYLE : 0) | (noZeroes ? NBD_FLAG_C_NO_ZEROES : 0), 0);
    send(clientFlags);

    if (!fixed && (wantedContexts.length > 0 || options.structuredReplies === true)) {
      throw new NbdHandshakeError('server does not support fixed newstyle negotiation, so structured replies and meta contexts are unavailable');
    }

    if (options.startTls) {
      if (!fixed) throw new NbdHandshakeError('server does not support fixed newstyle negotiation, so TLS (NBD_OPT_STARTTLS) is unavailable');
      send(optionRequest(NBD_OPT_STARTTLS));
      const reply = await readReply(NBD_OPT_STARTTLS);
      if (reply.type !== NBD_REP_ACK) throw optionError('NBD_OPT_STARTTLS', reply);
      // Anything the server sent after its ACK would be plain text it had no business sending.
      if (reader.detach().length > 0) throw new NbdProtocolError('server sent data after acknowledging NBD_OPT_STARTTLS');
      stream = await options.startTls(stream);
      if (timedOut) throw new NbdConnectionClosedError(`NBD handshake did not complete within ${timeoutMs} ms`);
      reader = new HandshakeReader(stream);
    }

    let structuredReplies = false;
    if (fixed && wantStructured) {
      send(optionRequest(NBD_OPT_STRUCTURED_REPLY));
      const reply = await readReply(NBD_OPT_STRUCTURED_REPLY);
      if (reply.type === NBD_REP_ACK) structuredReplies = true;
      else if (reply.type === NBD_REP_ERR_UNSUP) structuredReplies = false;
      else throw optionError('NBD_OPT_STRUCTURED_REPLY', reply);
      if (!structuredReplies && wantedContexts.length > 0) {
        throw new NbdHandshakeError(`server does not support structured replies, so meta contexts (${wantedContexts.join(', ')}) are unavailable`);
      }
    }

    const metaContexts = new Map<string, number>();
    if (wantedContexts.length > 0) {
      const queries = wantedContexts.map((c) => lengthPrefixed(c));
      const count = Buffer.allocUnsafe(4);
      count.writeUInt32BE(queries.length, 0);
      send(optionRequest(NBD_OPT_SET_META_CONTEXT, Buffer.concat([lengthPrefixed(exportName), count, ...queries])));
      for (;;) {
        const reply = await readReply(NBD_OPT_SET_META_CONTEXT);
        if (reply.type === NBD_REP_ACK) break;
        if (reply.type === NBD_REP_META_CONTEXT) {
          if (reply.data.length < 5) throw new NbdProtocolError(`NBD_REP_META_CONTEXT reply of ${reply.data.length} bytes`);
          metaContexts.set(reply.data.toString('utf8', 4), reply.data.readUInt32BE(0));
          continue;
        }
        if (reply.type & NBD_REP_FLAG_ERROR) throw optionError(`NBD_OPT_SET_META_CONTEXT (${wantedContexts.join(', ')})`, reply);
        throw new NbdProtocolError(`unexpected reply type ${reply.type} to NBD_OPT_SET_META_CONTEXT`);
      }
      const missing = wantedContexts.filter((c) => !metaContexts.has(c));
      if (missing.length > 0) {
        const offered = metaContexts.size ? [...metaContexts.keys()].join(', ') : 'none';
        const hints = missing
          .filter((c) => c.startsWith(QEMU_DIRTY_BITMAP_PREFIX))
          .map((c) => ` (bitmap "${c.slice(QEMU_DIRTY_BITMAP_PREFIX.length)}" does not exist or is not exported: qemu-nbd needs -B NAME)`);
        throw new NbdHandshakeError(
          `server does not offer meta context ${missing.join(', ')} on export "${exportName}"${hints.join('')}; offered: ${offered}`,
          'NBD_META_CONTEXT_UNAVAILABLE',
        );
      }
    }

    let size = -1;
    let transmissionFlags = 0;
    let blockSize: BlockSizeConstraints = { minimum: 1, preferred: 4096, maximum: DEFAULT_MAX_PAYLOAD, advertised: false };
    let description: string | undefined;
    let useExportName = !fixed;

    if (fixed) {
      const infos = Buffer.allocUnsafe(4);
      infos.writeUInt16BE(1, 0);
      infos.writeUInt16BE(NBD_INFO_BLOCK_SIZE, 2);
      send(optionRequest(NBD_OPT_GO, Buffer.concat([lengthPrefixed(exportName), infos])));
      for (;;) {
        const reply = await readReply(NBD_OPT_GO);
        if (reply.type === NBD_REP_ACK) break;
        if (reply.type === NBD_REP_INFO) {
          const d = reply.data;
          if (d.length < 2) throw new NbdProtocolError('NBD_REP_INFO reply without an info type');
          const infoType = d.readUInt16BE(0);
          if (infoType === NBD_INFO_EXPORT) {
            if (d.length !== 12) throw new NbdProtocolError(`NBD_INFO_EXPORT of ${d.length} bytes, expected 12`);
            const hi = d.readUInt32BE(2);
            if (hi >= 0x200000) throw new NbdProtocolError('export size beyond 2^53 bytes');
            size = hi * TWO_32 + d.readUInt32BE(6);
            transmissionFlags = d.readUInt16BE(10);
          } else if (infoType === NBD_INFO_BLOCK_SIZE) {
            if (d.length !== 14) throw new NbdProtocolError(`NBD_INFO_BLOCK_SIZE of ${d.length} bytes, expected 14`);
            blockSize = validateBlockSize(d.readUInt32BE(2), d.readUInt32BE(6), d.readUInt32BE(10));
          } else if (infoType === NBD_INFO_DESCRIPTION) {
            description = d.toString('utf8', 2);
          } else if (infoType === NBD_INFO_NAME) {
            // canonical name: informational only
          }
          continue;
        }
        if (reply.type === NBD_REP_ERR_UNSUP) {
          useExportName = true;
          break;
        }
        if (reply.type & NBD_REP_FLAG_ERROR) throw optionError(`NBD_OPT_GO for export "${exportName}"`, reply);
        throw new NbdProtocolError(`unexpected reply type ${reply.type} to NBD_OPT_GO`);
      }
      if (!useExportName && size < 0) throw new NbdProtocolError('server finished NBD_OPT_GO without sending NBD_INFO_EXPORT');
    }

    if (useExportName) {
      send(optionRequest(NBD_OPT_EXPORT_NAME, Buffer.from(exportName, 'utf8')));
      let reply: Buffer;
      try {
        reply = await reader.read(noZeroes ? 10 : 134);
      } catch (error) {
        if (error instanceof NbdConnectionClosedError) {
          throw new NbdHandshakeError(`server closed the connection after NBD_OPT_EXPORT_NAME: export "${exportName}" probably does not exist`);
        }
        throw error;
      }
      const hi = reply.readUInt32BE(0);
      if (hi >= 0x200000) throw new NbdProtocolError('export size beyond 2^53 bytes');
      size = hi * TWO_32 + reply.readUInt32BE(4);
      transmissionFlags = reply.readUInt16BE(8);
    }

    const maxPayload = blockSize.maximum === 0xffffffff ? DEFAULT_MAX_PAYLOAD : blockSize.maximum;
    const info: NegotiatedExport = { exportName, size, transmissionFlags, blockSize, maxPayload, structuredReplies, metaContexts, description };
    return { info, leftover: reader.detach(), stream };
  } catch (error) {
    reader.detach();
    throw error;
  } finally {
    clearTimeout(timer);
  }
}
