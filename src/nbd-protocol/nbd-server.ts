import { createServer, Server, Socket } from 'node:net';
import { rm } from 'node:fs/promises';
import {
  DEFAULT_MAX_PAYLOAD,
  NBD_CMD_DISC,
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
  NBD_INFO_BLOCK_SIZE,
  NBD_INFO_EXPORT,
  NBD_INIT_MAGIC,
  NBD_OPT_ABORT,
  NBD_OPT_EXPORT_NAME,
  NBD_OPT_GO,
  NBD_OPT_INFO,
  NBD_OPT_LIST,
  NBD_OPTION_REPLY_MAGIC,
  NBD_OPTS_MAGIC,
  NBD_REP_ACK,
  NBD_REP_ERR_INVALID,
  NBD_REP_ERR_UNKNOWN,
  NBD_REP_ERR_UNSUP,
  NBD_REP_INFO,
  NBD_REP_SERVER,
  NBD_REQUEST_MAGIC,
  NBD_SIMPLE_REPLY_MAGIC,
} from './constants';

/** What a read-only export serves: bytes of a disk of `size` bytes. */
export interface ReadableDisk {
  readonly size: number;
  /** `into`, when given, has exactly `length` bytes. */
  read(offset: number, length: number, into?: Buffer): Promise<Buffer>;
}

/** The largest READ served, advertised as the maximum block size: what NBD clients assume of a server that names none. */
const MAX_READ = DEFAULT_MAX_PAYLOAD;
const MAX_OPTION_BYTES = 64 * 1024;
const REQUEST_BYTES = 28;
const EPERM = 1;
const EIO = 5;
const EINVAL = 22;
const TRANSMISSION_FLAGS = NBD_FLAG_HAS_FLAGS | NBD_FLAG_READ_ONLY | NBD_FLAG_SEND_FLUSH | NBD_FLAG_CAN_MULTI_CONN;

/**
 * A read-only NBD server (fixed newstyle, simple replies, no TLS) for one export on a Unix socket, for clients on
 * this host such as nbdfuse. Writes, trims and zeroes are refused with EPERM; structured replies, meta contexts
 * and TLS are answered "unsupported", which clients take as a plain server.
 */
export class NbdServer {
  private readonly sockets = new Set<Socket>();
  private readonly inFlight = new Set<Promise<unknown>>();

  private constructor(
    private readonly server: Server,
    private readonly socketPath: string,
  ) {}

  static async listen(socketPath: string, exportName: string, disk: ReadableDisk): Promise<NbdServer> {
    const server = createServer({ noDelay: true });
    const nbd = new NbdServer(server, socketPath);
    server.on('connection', (socket) => nbd.serve(socket, exportName, disk));
    await new Promise<void>((resolve, reject) => {
      server.once('error', reject);
      server.listen(socketPath, () => {
        server.off('error', reject);
        resolve();
      });
    });
    return nbd;
  }

  /** Stops listening, drops every client, waits for the reads under way, removes the socket. */
  async close(): Promise<void> {
    const closed = new Promise<void>((resolve) => this.server.close(() => resolve()));
    for (const socket of this.sockets) socket.destroy();
    await closed;
    await Promise.allSettled([...this.inFlight]);
    await rm(this.socketPath, { force: true });
  }

  private serve(socket: Socket, exportName: string, disk: ReadableDisk): void {
    this.sockets.add(socket);
    socket.on('close', () => this.sockets.delete(socket));
    socket.on('error', () => socket.destroy());
    let pending: Buffer = Buffer.alloc(0);
    let phase = 'flags' as 'flags' | 'options' | 'transmission';
    let noZeroes = false;
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
      socket.write(data.length ? Buffer.concat([header, data]) : header);
    };
    const exportInfo = () => {
      const info = Buffer.alloc(12);
      info.writeUInt16BE(NBD_INFO_EXPORT, 0);
      info.writeBigUInt64BE(BigInt(disk.size), 2);
      info.writeUInt16BE(TRANSMISSION_FLAGS, 10);
      return info;
    };
    const blockSizeInfo = () => {
      const info = Buffer.alloc(14);
      info.writeUInt16BE(NBD_INFO_BLOCK_SIZE, 0);
      info.writeUInt32BE(1, 2);
      info.writeUInt32BE(4096, 6);
      info.writeUInt32BE(MAX_READ, 10);
      return info;
    };
    const reply = (cookie: Buffer, error: number, data?: Buffer) => {
      const header = Buffer.alloc(16);
      header.writeUInt32BE(NBD_SIMPLE_REPLY_MAGIC, 0);
      header.writeUInt32BE(error, 4);
      cookie.copy(header, 8);
      // both written in the same turn: the reply's bytes stay together on the stream
      let flowing = socket.write(header);
      if (data) flowing = socket.write(data) && flowing;
      if (!flowing && !socket.isPaused()) {
        socket.pause();
        socket.once('drain', () => socket.resume());
      }
    };

    /** One option; false when the connection moves on (transmission) or ends. */
    const option = (type: number, data: Buffer): boolean => {
      if (type === NBD_OPT_EXPORT_NAME) {
        if (data.toString('utf8') !== exportName) {
          socket.destroy();
          return false;
        }
        const answer = Buffer.alloc(noZeroes ? 10 : 134);
        answer.writeBigUInt64BE(BigInt(disk.size), 0);
        answer.writeUInt16BE(TRANSMISSION_FLAGS, 8);
        socket.write(answer);
        phase = 'transmission';
        return false;
      }
      if (type === NBD_OPT_ABORT) {
        optionReply(type, NBD_REP_ACK);
        socket.end();
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
      optionReply(type, NBD_REP_ERR_UNSUP);
      return true;
    };

    const command = (request: Buffer): number => {
      if (request.readUInt32BE(0) !== NBD_REQUEST_MAGIC) {
        socket.destroy();
        return -1;
      }
      const type = request.readUInt16BE(6);
      const cookie = Buffer.from(request.subarray(8, 16));
      const offset = Number(request.readBigUInt64BE(16));
      const length = request.readUInt32BE(24);
      // a WRITE's payload follows its header and is consumed (then refused)
      if (type === NBD_CMD_WRITE) {
        reply(cookie, EPERM);
        return REQUEST_BYTES + length;
      }
      if (type === NBD_CMD_DISC) {
        socket.end();
        return -1;
      }
      if (type === NBD_CMD_FLUSH) reply(cookie, 0);
      else if (type === NBD_CMD_TRIM || type === NBD_CMD_WRITE_ZEROES) reply(cookie, EPERM);
      else if (type !== NBD_CMD_READ) reply(cookie, EINVAL);
      else if (length === 0 || length > MAX_READ || !Number.isSafeInteger(offset) || offset + length > disk.size) reply(cookie, EINVAL);
      else {
        const read = disk.read(offset, length, Buffer.allocUnsafe(length)).then(
          (data) => !socket.destroyed && reply(cookie, 0, data),
          () => !socket.destroyed && reply(cookie, EIO),
        );
        this.inFlight.add(read);
        void read.finally(() => this.inFlight.delete(read));
      }
      return REQUEST_BYTES;
    };

    socket.on('data', (chunk: Buffer) => {
      pending = pending.length ? Buffer.concat([pending, chunk]) : chunk;
      for (;;) {
        if (phase === 'flags') {
          if (pending.length < 4) return;
          noZeroes = (pending.readUInt32BE(0) & NBD_FLAG_C_NO_ZEROES) !== 0;
          pending = pending.subarray(4);
          phase = 'options';
        } else if (phase === 'options') {
          if (pending.length < 16) return;
          const length = pending.readUInt32BE(12);
          if (pending.readBigUInt64BE(0) !== NBD_OPTS_MAGIC || length > MAX_OPTION_BYTES) {
            socket.destroy();
            return;
          }
          if (pending.length < 16 + length) return;
          const type = pending.readUInt32BE(8);
          const data = pending.subarray(16, 16 + length);
          pending = pending.subarray(16 + length);
          // option() moves the connection on to transmission, or ends it
          if (!option(type, data) && (phase as string) !== 'transmission') return;
        } else {
          if (pending.length < REQUEST_BYTES) return;
          const type = pending.readUInt16BE(6);
          if (type === NBD_CMD_WRITE && pending.readUInt32BE(24) > MAX_READ) {
            socket.destroy();
            return;
          }
          if (type === NBD_CMD_WRITE && pending.length < REQUEST_BYTES + pending.readUInt32BE(24)) return;
          const used = command(pending.subarray(0, REQUEST_BYTES));
          if (used < 0) return;
          pending = pending.subarray(used);
        }
      }
    });
  }
}
