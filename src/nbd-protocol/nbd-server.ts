import { createServer, Server, Socket } from 'node:net';
import type { Duplex } from 'node:stream';
import { TLSSocket } from 'node:tls';
import { rm } from 'node:fs/promises';
import {
  BASE_ALLOCATION,
  DEFAULT_MAX_PAYLOAD,
  NBD_CMD_BLOCK_STATUS,
  NBD_CMD_DISC,
  NBD_CMD_FLAG_REQ_ONE,
  NBD_CMD_FLUSH,
  NBD_CMD_READ,
  NBD_CMD_TRIM,
  NBD_CMD_WRITE,
  NBD_CMD_WRITE_ZEROES,
  NBD_FLAG_C_NO_ZEROES,
  NBD_FLAG_CAN_MULTI_CONN,
  NBD_FLAG_FIXED_NEWSTYLE,
  NBD_FLAG_HAS_FLAGS,
  NBD_FLAG_NO_ZEROES,
  NBD_FLAG_READ_ONLY,
  NBD_FLAG_SEND_FLUSH,
  NBD_FLAG_SEND_TRIM,
  NBD_FLAG_SEND_WRITE_ZEROES,
  NBD_INFO_BLOCK_SIZE,
  NBD_INFO_EXPORT,
  NBD_INIT_MAGIC,
  NBD_MAX_STRING,
  NBD_OPT_ABORT,
  NBD_OPT_EXPORT_NAME,
  NBD_OPT_GO,
  NBD_OPT_INFO,
  NBD_OPT_LIST,
  NBD_OPT_LIST_META_CONTEXT,
  NBD_OPT_SET_META_CONTEXT,
  NBD_OPT_STARTTLS,
  NBD_OPT_STRUCTURED_REPLY,
  NBD_OPTION_REPLY_MAGIC,
  NBD_OPTS_MAGIC,
  NBD_REP_ACK,
  NBD_REP_ERR_INVALID,
  NBD_REP_ERR_TLS_REQD,
  NBD_REP_ERR_UNKNOWN,
  NBD_REP_ERR_UNSUP,
  NBD_REP_INFO,
  NBD_REP_META_CONTEXT,
  NBD_REP_SERVER,
  NBD_REPLY_FLAG_DONE,
  NBD_REPLY_TYPE_BLOCK_STATUS,
  NBD_REPLY_TYPE_ERROR,
  NBD_REPLY_TYPE_OFFSET_DATA,
  NBD_REQUEST_MAGIC,
  NBD_SIMPLE_REPLY_MAGIC,
  NBD_STATE_HOLE,
  NBD_STATE_ZERO,
  NBD_STRUCTURED_REPLY_MAGIC,
} from './constants';

/** A run of a disk: `zero` when it reads as zeros without being stored (a hole), else data. */
export interface DiskExtent {
  length: number;
  zero: boolean;
}

/** What a read-only export serves: bytes of a disk of `size` bytes. */
export interface ReadableDisk {
  readonly size: number;
  /** `into`, when given, has exactly `length` bytes. */
  read(offset: number, length: number, into?: Buffer): Promise<Buffer>;
  /**
   * The runs of [offset, offset + length), contiguous and in order from `offset`: what base:allocation reports, so
   * that clients copy or map a disk without reading its holes. A disk without it is described as data throughout.
   */
  allocation?(offset: number, length: number): Promise<DiskExtent[]>;
}

/** What a writable export serves. `flush` makes every write answered before it durable. */
export interface WritableDisk extends ReadableDisk {
  write(offset: number, data: Buffer): Promise<void>;
  writeZeroes(offset: number, length: number): Promise<void>;
  flush(): Promise<void>;
}

/** TLS 1.3 with a pre-shared key, as qemu's tls-creds-psk: the client must STARTTLS before anything else. */
export interface NbdServerTls {
  identity: string;
  key: Buffer;
  /** How long a client has to finish its TLS handshake after STARTTLS (default 10 s). */
  handshakeTimeoutMs?: number;
}

export type NbdServerExport = { exportName: string; tls?: NbdServerTls } & ({ writable?: false; disk: ReadableDisk } | { writable: true; disk: WritableDisk });

/** The largest READ or WRITE served, advertised as the maximum block size: what NBD clients assume of a server that names none. */
const MAX_PAYLOAD = DEFAULT_MAX_PAYLOAD;
/** Write payloads held while the disk takes them; beyond this the connection stops reading until it catches up. */
const MAX_WRITES_IN_FLIGHT = 64 * 1024 * 1024;
const MAX_OPTION_BYTES = 64 * 1024;
const TLS_HANDSHAKE_MS = 10_000;
const REQUEST_BYTES = 28;
/** The id of base:allocation, the one meta context served. */
const ALLOCATION_CONTEXT_ID = 1;
const EPERM = 1;
const EIO = 5;
const EINVAL = 22;
const ENOSPC = 28;
const READ_ONLY_FLAGS = NBD_FLAG_HAS_FLAGS | NBD_FLAG_READ_ONLY | NBD_FLAG_SEND_FLUSH | NBD_FLAG_CAN_MULTI_CONN;
const WRITABLE_FLAGS = NBD_FLAG_HAS_FLAGS | NBD_FLAG_SEND_FLUSH | NBD_FLAG_SEND_WRITE_ZEROES | NBD_FLAG_SEND_TRIM;

/**
 * An NBD server (fixed newstyle) for one export: on a Unix socket for clients on this host such as nbdfuse, or on
 * TCP with TLS-PSK for an agent. A read-only export refuses writes, trims and zeroes with EPERM; a writable one hands
 * them to its disk. A client that negotiates structured replies gets its reads and errors of reads as chunks, and
 * may select the meta context base:allocation, whose BLOCK_STATUS tells the disk's holes from its data (the disk's
 * `allocation`): what qemu-img convert, nbdcopy and the hub's own point reader skip holes by. A client that
 * negotiates nothing gets simple replies.
 */
export class NbdServer {
  private readonly connections = new Set<Duplex>();
  private readonly inFlight = new Set<Promise<unknown>>();

  private constructor(
    private readonly server: Server,
    private readonly socketPath: string | null,
  ) {}

  /** A read-only export on a Unix socket, without TLS. */
  static listen(socketPath: string, exportName: string, disk: ReadableDisk): Promise<NbdServer> {
    return NbdServer.listenSocket(socketPath, { exportName, disk });
  }

  /** An export on a Unix socket, writable if `served` says so: the socket's directory decides who may connect. */
  static listenSocket(socketPath: string, served: NbdServerExport): Promise<NbdServer> {
    return NbdServer.start({ path: socketPath }, served);
  }

  /** An export on host:port (0: any free port, see `port`). */
  static listenTcp(host: string, port: number, served: NbdServerExport): Promise<NbdServer> {
    return NbdServer.start({ host, port }, served);
  }

  private static async start(address: { path: string } | { host: string; port: number }, served: NbdServerExport): Promise<NbdServer> {
    const server = createServer({ noDelay: true });
    const nbd = new NbdServer(server, 'path' in address ? address.path : null);
    server.on('connection', (socket) => nbd.serve(socket, served));
    await new Promise<void>((resolve, reject) => {
      server.once('error', reject);
      const listening = () => {
        server.off('error', reject);
        resolve();
      };
      if ('path' in address) server.listen(address.path, listening);
      else server.listen(address.port, address.host, listening);
    });
    return nbd;
  }

  /** The TCP port it listens on. */
  get port(): number {
    const address = this.server.address();
    return typeof address === 'object' && address ? address.port : 0;
  }

  /** Stops listening, drops every client, waits for the requests under way, removes the socket. */
  async close(): Promise<void> {
    const closed = new Promise<void>((resolve) => this.server.close(() => resolve()));
    for (const connection of this.connections) connection.destroy();
    await closed;
    await Promise.allSettled([...this.inFlight]);
    if (this.socketPath) await rm(this.socketPath, { force: true });
  }

  private track<T>(work: Promise<T>): Promise<T> {
    this.inFlight.add(work);
    void work.finally(() => this.inFlight.delete(work)).catch(() => undefined);
    return work;
  }

  private serve(socket: Socket, served: NbdServerExport): void {
    const { exportName, disk } = served;
    const flags = served.writable ? WRITABLE_FLAGS : READ_ONLY_FLAGS;
    let stream: Duplex = socket;
    const input = new Input();
    let phase = 'flags' as 'flags' | 'options' | 'tls' | 'transmission';
    let noZeroes = false;
    let structured = false;
    let allocationSelected = false;
    const writes = new Set<Promise<void>>();
    let writeBytes = 0;
    const watch = (connection: Duplex) => {
      this.connections.add(connection);
      connection.on('close', () => this.connections.delete(connection));
      connection.on('error', () => connection.destroy());
      connection.on('data', onData);
    };
    watch(socket);

    const greeting = Buffer.alloc(18);
    greeting.writeBigUInt64BE(NBD_INIT_MAGIC, 0);
    greeting.writeBigUInt64BE(NBD_OPTS_MAGIC, 8);
    greeting.writeUInt16BE(NBD_FLAG_FIXED_NEWSTYLE | NBD_FLAG_NO_ZEROES, 16);
    socket.write(greeting);

    const optionReply = (option: number, type: number, data: Buffer = Buffer.alloc(0)) => {
      const header = Buffer.alloc(20);
      header.writeBigUInt64BE(NBD_OPTION_REPLY_MAGIC, 0);
      header.writeUInt32BE(option, 8);
      header.writeUInt32BE(type >>> 0, 12);
      header.writeUInt32BE(data.length, 16);
      stream.write(data.length ? Buffer.concat([header, data]) : header);
    };
    const exportInfo = () => {
      const info = Buffer.alloc(12);
      info.writeUInt16BE(NBD_INFO_EXPORT, 0);
      info.writeBigUInt64BE(BigInt(disk.size), 2);
      info.writeUInt16BE(flags, 10);
      return info;
    };
    const blockSizeInfo = () => {
      const info = Buffer.alloc(14);
      info.writeUInt16BE(NBD_INFO_BLOCK_SIZE, 0);
      info.writeUInt32BE(1, 2);
      info.writeUInt32BE(4096, 6);
      info.writeUInt32BE(MAX_PAYLOAD, 10);
      return info;
    };
    const send = (...parts: Buffer[]) => {
      if (stream.destroyed) return;
      // all written in the same turn: a reply's bytes stay together on the stream
      let flowing = true;
      for (const part of parts) flowing = stream.write(part) && flowing;
      if (!flowing && !stream.isPaused()) {
        stream.pause();
        stream.once('drain', () => writeBytes <= MAX_WRITES_IN_FLIGHT && stream.resume());
      }
    };
    const reply = (cookie: Buffer, error: number, data?: Buffer) => {
      const header = Buffer.alloc(16);
      header.writeUInt32BE(NBD_SIMPLE_REPLY_MAGIC, 0);
      header.writeUInt32BE(error, 4);
      cookie.copy(header, 8);
      if (data) send(header, data);
      else send(header);
    };
    /** The one (final) chunk of a structured reply; `head` starts its payload, `data` (a READ's bytes) follows. */
    const chunk = (cookie: Buffer, type: number, head: Buffer, data?: Buffer) => {
      const header = Buffer.alloc(20 + head.length);
      header.writeUInt32BE(NBD_STRUCTURED_REPLY_MAGIC, 0);
      header.writeUInt16BE(NBD_REPLY_FLAG_DONE, 4);
      header.writeUInt16BE(type, 6);
      cookie.copy(header, 8);
      header.writeUInt32BE(head.length + (data?.length ?? 0), 16);
      head.copy(header, 20);
      if (data) send(header, data);
      else send(header);
    };
    /** An error of a READ or BLOCK_STATUS: a chunk once structured replies are negotiated, as the spec has it for READ. */
    const fail = (cookie: Buffer, error: number, message: string) => {
      if (!structured) return reply(cookie, error);
      const text = Buffer.from(message);
      const payload = Buffer.alloc(6 + text.length);
      payload.writeUInt32BE(error, 0);
      payload.writeUInt16BE(text.length, 4);
      text.copy(payload, 6);
      chunk(cookie, NBD_REPLY_TYPE_ERROR, payload);
    };
    const errno = (error: unknown) => ((error as NodeJS.ErrnoException)?.code === 'ENOSPC' ? ENOSPC : error instanceof RangeError ? EINVAL : EIO);

    /** The connection moves under TLS: the client starts its handshake once it reads the ACK, and sent nothing after. */
    const startTls = (tls: NbdServerTls) => {
      optionReply(NBD_OPT_STARTTLS, NBD_REP_ACK);
      phase = 'tls';
      socket.off('data', onData);
      const secure = new TLSSocket(socket, {
        isServer: true,
        // no certificate is verified under a pre-shared key: an empty list of authorities spares the first handshake
        // node's parse of its whole root store (20-25 ms of each chunk-nbd export's start on this machine)
        ca: [],
        minVersion: 'TLSv1.3',
        ciphers: 'TLS_AES_128_GCM_SHA256:TLS_AES_256_GCM_SHA384',
        pskCallback: (_socket: TLSSocket, identity: string) => (identity === tls.identity ? tls.key : null),
      } as ConstructorParameters<typeof TLSSocket>[1]);
      stream = secure;
      watch(secure);
      // a peer that never finishes its handshake does not hold the connection open
      const timer = setTimeout(() => secure.destroy(), tls.handshakeTimeoutMs ?? TLS_HANDSHAKE_MS);
      timer.unref();
      secure.once('close', () => clearTimeout(timer));
      secure.once('secure', () => {
        clearTimeout(timer);
        phase = 'options';
        pump();
      });
    };

    /** One option; false when the connection moves on (TLS, transmission) or ends. */
    const option = (type: number, data: Buffer): boolean => {
      if (type === NBD_OPT_ABORT) {
        optionReply(type, NBD_REP_ACK);
        stream.end();
        return false;
      }
      if (served.tls && stream === socket) {
        // a client that sends more before the ACK is not waiting for TLS: its bytes would be read as plain text
        if (type === NBD_OPT_STARTTLS && data.length === 0 && input.length === 0) {
          startTls(served.tls);
          return false;
        }
        // nothing of the export, not even its name, before TLS; NBD_OPT_EXPORT_NAME has no error reply
        if (type === NBD_OPT_EXPORT_NAME) {
          socket.destroy();
          return false;
        }
        optionReply(type, NBD_REP_ERR_TLS_REQD);
        return true;
      }
      // the NBD spec: a second STARTTLS on a connection already under TLS is invalid, not unsupported
      if (type === NBD_OPT_STARTTLS && served.tls) {
        optionReply(type, NBD_REP_ERR_INVALID, Buffer.from('TLS is already in use on this connection'));
        return true;
      }
      if (type === NBD_OPT_EXPORT_NAME) {
        if (data.toString('utf8') !== exportName) {
          stream.destroy();
          return false;
        }
        const answer = Buffer.alloc(noZeroes ? 10 : 134);
        answer.writeBigUInt64BE(BigInt(disk.size), 0);
        answer.writeUInt16BE(flags, 8);
        stream.write(answer);
        phase = 'transmission';
        return false;
      }
      if (type === NBD_OPT_LIST) {
        const name = Buffer.from(exportName);
        const entry = Buffer.alloc(4 + name.length);
        entry.writeUInt32BE(name.length, 0);
        name.copy(entry, 4);
        optionReply(type, NBD_REP_SERVER, entry);
        optionReply(type, NBD_REP_ACK);
        return true;
      }
      if (type === NBD_OPT_INFO || type === NBD_OPT_GO) {
        const nameLength = data.length >= 4 ? data.readUInt32BE(0) : -1;
        const requests = nameLength >= 0 && data.length >= 6 + nameLength ? data.readUInt16BE(4 + nameLength) : -1;
        if (requests < 0 || data.length !== 6 + nameLength + 2 * requests) {
          optionReply(type, NBD_REP_ERR_INVALID);
          return true;
        }
        // an empty name is the default export, which is this one
        const name = data.toString('utf8', 4, 4 + nameLength);
        if (name !== '' && name !== exportName) {
          optionReply(type, NBD_REP_ERR_UNKNOWN);
          return true;
        }
        optionReply(type, NBD_REP_INFO, exportInfo());
        optionReply(type, NBD_REP_INFO, blockSizeInfo());
        optionReply(type, NBD_REP_ACK);
        if (type === NBD_OPT_GO) {
          phase = 'transmission';
          return false;
        }
        return true;
      }
      if (type === NBD_OPT_STRUCTURED_REPLY) {
        if (data.length !== 0) optionReply(type, NBD_REP_ERR_INVALID, Buffer.from('NBD_OPT_STRUCTURED_REPLY has no data'));
        else if (structured) optionReply(type, NBD_REP_ERR_INVALID, Buffer.from('structured replies are negotiated already'));
        else {
          structured = true;
          optionReply(type, NBD_REP_ACK);
        }
        return true;
      }
      if (type === NBD_OPT_LIST_META_CONTEXT || type === NBD_OPT_SET_META_CONTEXT) {
        metaContexts(type, data);
        return true;
      }
      optionReply(type, NBD_REP_ERR_UNSUP);
      return true;
    };

    /**
     * LIST names base:allocation to an empty query list, to "base:" and to its own name; SET selects it by its name
     * only, and replaces what an earlier SET selected, also when it fails. Other namespaces have no context here.
     */
    const metaContexts = (type: number, data: Buffer) => {
      const set = type === NBD_OPT_SET_META_CONTEXT;
      if (set) allocationSelected = false;
      if (!structured) {
        optionReply(type, NBD_REP_ERR_INVALID, Buffer.from('meta contexts need structured replies, negotiated first'));
        return;
      }
      const request = metaContextRequest(data);
      if (!request) {
        optionReply(type, NBD_REP_ERR_INVALID, Buffer.from('malformed meta context request'));
        return;
      }
      if (request.exportName !== '' && request.exportName !== exportName) {
        optionReply(type, NBD_REP_ERR_UNKNOWN, Buffer.from(`no export ${JSON.stringify(request.exportName)}`));
        return;
      }
      const { queries } = request;
      const matched = set ? queries.includes(BASE_ALLOCATION) : queries.length === 0 || queries.some((q) => q === 'base:' || q === BASE_ALLOCATION);
      if (matched) {
        const name = Buffer.from(BASE_ALLOCATION);
        const context = Buffer.alloc(4 + name.length);
        // LIST names contexts without selecting them: its ids are reserved, zero
        context.writeUInt32BE(set ? ALLOCATION_CONTEXT_ID : 0, 0);
        name.copy(context, 4);
        optionReply(type, NBD_REP_META_CONTEXT, context);
      }
      allocationSelected = set && matched;
      optionReply(type, NBD_REP_ACK);
    };

    const write = (cookie: Buffer, work: () => Promise<void>, bytes: number) => {
      writeBytes += bytes;
      const done = this.track(work()).then(
        () => reply(cookie, 0),
        (error) => reply(cookie, errno(error)),
      );
      writes.add(done);
      void done.finally(() => {
        writes.delete(done);
        writeBytes -= bytes;
        if (writeBytes <= MAX_WRITES_IN_FLIGHT && stream.isPaused() && stream.writableNeedDrain !== true) stream.resume();
      });
      if (writeBytes > MAX_WRITES_IN_FLIGHT) stream.pause();
    };

    /** One request (its payload, for a WRITE, already in `payload`); false when the connection ends. */
    const command = (request: Buffer, payload: Buffer | null): boolean => {
      if (request.readUInt32BE(0) !== NBD_REQUEST_MAGIC) {
        stream.destroy();
        return false;
      }
      const commandFlags = request.readUInt16BE(4);
      const type = request.readUInt16BE(6);
      const cookie = Buffer.from(request.subarray(8, 16));
      const offset = Number(request.readBigUInt64BE(16));
      const length = request.readUInt32BE(24);
      const inside = length > 0 && Number.isSafeInteger(offset) && offset + length <= disk.size;
      if (type === NBD_CMD_DISC) {
        // answered writes are the disk's; the ones under way finish before the connection ends
        void Promise.allSettled([...writes]).then(() => stream.end());
        return false;
      }
      if (type === NBD_CMD_FLUSH) {
        const flushed = Promise.allSettled([...writes]).then(() => (served.writable ? served.disk.flush() : undefined));
        void this.track(flushed).then(
          () => reply(cookie, 0),
          (error) => reply(cookie, errno(error)),
        );
      } else if (type === NBD_CMD_WRITE || type === NBD_CMD_WRITE_ZEROES || type === NBD_CMD_TRIM) {
        if (!served.writable) reply(cookie, EPERM);
        else if (!inside) reply(cookie, EINVAL);
        else if (type === NBD_CMD_WRITE) write(cookie, () => served.disk.write(offset, payload!), length);
        // a trimmed range may read back as anything: zeros are what this disk gives
        else write(cookie, () => served.disk.writeZeroes(offset, length), 0);
      } else if (type === NBD_CMD_BLOCK_STATUS) {
        if (!allocationSelected) fail(cookie, EINVAL, 'no meta context was selected');
        else if (!inside) fail(cookie, EINVAL, `${length} bytes at ${offset} are not inside the disk (${disk.size} bytes)`);
        else {
          void this.track(allocationStatus(disk, offset, length, (commandFlags & NBD_CMD_FLAG_REQ_ONE) !== 0)).then(
            (descriptors) => chunk(cookie, NBD_REPLY_TYPE_BLOCK_STATUS, descriptors),
            // the error number only: what went wrong inside the disk (a path, a pack) is not the client's to read
            (error) => fail(cookie, errno(error), ''),
          );
        }
      } else if (type !== NBD_CMD_READ) reply(cookie, EINVAL);
      else if (!inside || length > MAX_PAYLOAD) fail(cookie, EINVAL, `${length} bytes at ${offset} are not a read of this disk (${disk.size} bytes, reads of up to ${MAX_PAYLOAD})`);
      else {
        void this.track(disk.read(offset, length, Buffer.allocUnsafe(length))).then(
          (data) => {
            if (!structured) return reply(cookie, 0, data);
            const at = Buffer.alloc(8);
            at.writeBigUInt64BE(BigInt(offset));
            chunk(cookie, NBD_REPLY_TYPE_OFFSET_DATA, at, data);
          },
          (error) => fail(cookie, errno(error), ''),
        );
      }
      return true;
    };

    const pump = () => {
      for (;;) {
        if (phase === 'tls') return;
        if (phase === 'flags') {
          if (input.length < 4) return;
          noZeroes = (input.take(4).readUInt32BE(0) & NBD_FLAG_C_NO_ZEROES) !== 0;
          phase = 'options';
        } else if (phase === 'options') {
          const head = input.peek(16);
          if (!head) return;
          const length = head.readUInt32BE(12);
          if (head.readBigUInt64BE(0) !== NBD_OPTS_MAGIC || length > MAX_OPTION_BYTES) {
            stream.destroy();
            return;
          }
          if (input.length < 16 + length) return;
          input.take(16);
          const data = input.take(length);
          // option() moves the connection on (TLS, transmission), or ends it
          if (!option(head.readUInt32BE(8), data) && (phase as string) !== 'transmission') return;
        } else {
          const head = input.peek(REQUEST_BYTES);
          if (!head) return;
          const type = head.readUInt16BE(6);
          const length = head.readUInt32BE(24);
          if (type === NBD_CMD_WRITE && length > MAX_PAYLOAD) {
            stream.destroy();
            return;
          }
          if (type === NBD_CMD_WRITE && input.length < REQUEST_BYTES + length) return;
          input.take(REQUEST_BYTES);
          // a WRITE's payload follows its header and is consumed, also when it is refused
          if (!command(head, type === NBD_CMD_WRITE ? input.take(length) : null)) return;
        }
      }
    };

    function onData(chunk: Buffer) {
      input.push(chunk);
      pump();
    }
  }
}

/** An NBD_OPT_LIST_META_CONTEXT or NBD_OPT_SET_META_CONTEXT payload: the export's name and the queries; null if malformed. */
function metaContextRequest(data: Buffer): { exportName: string; queries: string[] } | null {
  let at = 0;
  const string = (): string | null => {
    if (data.length < at + 4) return null;
    const length = data.readUInt32BE(at);
    if (length > NBD_MAX_STRING || data.length < at + 4 + length) return null;
    at += 4 + length;
    return data.toString('utf8', at - length, at);
  };
  const exportName = string();
  if (exportName === null || data.length < at + 4) return null;
  const count = data.readUInt32BE(at);
  at += 4;
  const queries: string[] = [];
  // each query takes at least its 4-byte length: a count beyond the payload ends the loop early
  for (let i = 0; i < count; i++) {
    const query = string();
    if (query === null) return null;
    queries.push(query);
  }
  return at === data.length ? { exportName, queries } : null;
}

/**
 * The payload of a BLOCK_STATUS chunk for base:allocation over [offset, offset + length): the disk's runs, neighbours
 * of one kind merged, never past the request's end; one descriptor for REQ_ONE.
 */
async function allocationStatus(disk: ReadableDisk, offset: number, length: number, one: boolean): Promise<Buffer> {
  const runs = disk.allocation ? await disk.allocation(offset, length) : [];
  const descriptors: { length: number; flags: number }[] = [];
  let covered = 0;
  for (const run of runs) {
    const take = Math.min(run.length, length - covered);
    if (!(take > 0)) break;
    const flags = run.zero ? NBD_STATE_HOLE | NBD_STATE_ZERO : 0;
    const last = descriptors[descriptors.length - 1];
    if (last?.flags === flags) last.length += take;
    else descriptors.push({ length: take, flags });
    covered += take;
  }
  // a reply has at least one descriptor; a disk that tells nothing is data, which is always true to say
  if (!descriptors.length) descriptors.push({ length, flags: 0 });
  if (one) descriptors.length = 1;
  const payload = Buffer.alloc(4 + 8 * descriptors.length);
  payload.writeUInt32BE(ALLOCATION_CONTEXT_ID, 0);
  descriptors.forEach((d, i) => {
    payload.writeUInt32BE(d.length, 4 + 8 * i);
    payload.writeUInt32BE(d.flags, 8 + 8 * i);
  });
  return payload;
}

/**
 * Bytes received and not yet parsed, kept as the chunks they came in: a 4 MiB WRITE arriving in 16 KiB TLS records
 * is copied once, into its payload, instead of into an ever longer buffer with every record.
 */
class Input {
  private chunks: Buffer[] = [];
  length = 0;

  push(chunk: Buffer): void {
    this.chunks.push(chunk);
    this.length += chunk.length;
  }

  /** The first `n` bytes, left in place; null while fewer are here. */
  peek(n: number): Buffer | null {
    if (this.length < n) return null;
    if (this.chunks[0].length < n) {
      let count = 0;
      for (let bytes = 0; bytes < n; count++) bytes += this.chunks[count].length;
      this.chunks.splice(0, count, Buffer.concat(this.chunks.slice(0, count)));
    }
    return this.chunks[0].subarray(0, n);
  }

  /** The first `n` bytes, removed. */
  take(n: number): Buffer {
    if (n === 0) return Buffer.alloc(0);
    const first = this.chunks[0];
    let out: Buffer;
    if (first.length >= n) {
      out = first.subarray(0, n);
      if (first.length === n) this.chunks.shift();
      else this.chunks[0] = first.subarray(n);
    } else {
      out = Buffer.allocUnsafe(n);
      let filled = 0;
      while (filled < n) {
        const chunk = this.chunks[0];
        const used = chunk.copy(out, filled, 0, n - filled);
        filled += used;
        if (used === chunk.length) this.chunks.shift();
        else this.chunks[0] = chunk.subarray(used);
      }
    }
    this.length -= n;
    return out;
  }
}
