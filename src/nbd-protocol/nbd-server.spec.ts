import { randomBytes } from 'node:crypto';
import { mkdtempSync, rmSync } from 'node:fs';
import { createConnection, Socket } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { prng } from '../../test/support/prng';
import {
  BASE_ALLOCATION,
  NBD_CMD_BLOCK_STATUS,
  NBD_CMD_FLAG_REQ_ONE,
  NBD_CMD_READ,
  NBD_OPT_GO,
  NBD_OPT_LIST_META_CONTEXT,
  NBD_OPT_SET_META_CONTEXT,
  NBD_OPT_STARTTLS,
  NBD_OPT_STRUCTURED_REPLY,
  NBD_REP_ACK,
  NBD_REP_ERR_INVALID,
  NBD_REP_ERR_TLS_REQD,
  NBD_REP_ERR_UNKNOWN,
  NBD_REP_FLAG_ERROR,
  NBD_REP_INFO,
  NBD_REP_META_CONTEXT,
  NBD_REPLY_FLAG_DONE,
  NBD_REPLY_TYPE_BLOCK_STATUS,
  NBD_REPLY_TYPE_ERROR,
  NBD_REPLY_TYPE_OFFSET_DATA,
  NBD_SIMPLE_REPLY_MAGIC,
  NBD_STRUCTURED_REPLY_MAGIC,
} from './constants';
import { DiskExtent, NbdServer, ReadableDisk } from './nbd-server';
import { NbdPsk, pskStartTls } from './tls-psk';

const EIO = 5;
const EINVAL = 22;
const HOLE_ZERO = 3;

/**
 * Option haggling and the transmission replies of structured replies and base:allocation, byte by byte as a client
 * sends them: what the spec answers to malformed payloads, unknown exports and commands out of turn, and that the
 * connection goes on where it says so.
 */
describe('NbdServer: structured replies and base:allocation on the wire', () => {
  let dir: string;
  let server: NbdServer;
  const data = randomBytes(64 * 1024);
  let allocation: ReadableDisk['allocation'];
  let failReads = false;
  const disk: ReadableDisk = {
    size: data.length,
    read: async (offset, length, into) => {
      if (failReads) throw new Error('/var/lib/sendense/packs/0123.pack: checksum mismatch');
      data.copy(into!, 0, offset, offset + length);
      return into!;
    },
    allocation: (offset, length) => allocation!(offset, length),
  };
  const sessions: Session[] = [];

  beforeAll(async () => {
    dir = mkdtempSync(join(tmpdir(), 'sendense-nbd-server-spec-'));
    server = await NbdServer.listen(join(dir, 'nbd.sock'), 'rp', disk);
  });
  beforeEach(() => {
    allocation = async (_offset, length) => [{ length, zero: false }];
    failReads = false;
  });
  afterEach(() => {
    for (const s of sessions.splice(0)) s.socket.destroy();
  });
  afterAll(async () => {
    await server.close();
    rmSync(dir, { recursive: true, force: true });
  });

  async function session(): Promise<Session> {
    const s = await Session.open(join(dir, 'nbd.sock'));
    sessions.push(s);
    return s;
  }

  /** Structured replies, base:allocation selected, then NBD_OPT_GO: a session in transmission. */
  async function transmitting(): Promise<Session> {
    const s = await session();
    expect(await s.option(NBD_OPT_STRUCTURED_REPLY)).toEqual([[NBD_REP_ACK, '']]);
    expect(await s.option(NBD_OPT_SET_META_CONTEXT, metaRequest('rp', [BASE_ALLOCATION]))).toEqual([[NBD_REP_META_CONTEXT, context(1)], [NBD_REP_ACK, '']]);
    await s.go();
    return s;
  }

  it('acknowledges NBD_OPT_STRUCTURED_REPLY once; with data, or a second time, it is invalid', async () => {
    const s = await session();
    expect(await s.option(NBD_OPT_STRUCTURED_REPLY, Buffer.from([0]))).toEqual([[NBD_REP_ERR_INVALID, expect.any(String)]]);
    expect(await s.option(NBD_OPT_STRUCTURED_REPLY)).toEqual([[NBD_REP_ACK, '']]);
    expect(await s.option(NBD_OPT_STRUCTURED_REPLY)).toEqual([[NBD_REP_ERR_INVALID, expect.any(String)]]);
    await s.go();
  });

  it('over TLS: options before STARTTLS are refused, a second STARTTLS is invalid, and the session goes on', async () => {
    const psk: NbdPsk = { identity: 'sendense', key: randomBytes(32).toString('hex') };
    const tlsServer = await NbdServer.listenTcp('127.0.0.1', 0, { exportName: 'rp', disk, tls: { identity: psk.identity, key: Buffer.from(psk.key, 'hex') } });
    try {
      const s = await Session.open(tlsServer.port);
      sessions.push(s);
      expect(await s.option(NBD_OPT_STRUCTURED_REPLY)).toEqual([[NBD_REP_ERR_TLS_REQD, '']]);
      await s.startTls(psk);
      expect(await s.option(NBD_OPT_STARTTLS)).toEqual([[NBD_REP_ERR_INVALID, 'TLS is already in use on this connection']]);
      await s.go();
      const read = await s.command(NBD_CMD_READ, 0, 4096, 512);
      expect(read.data.equals(data.subarray(4096, 4608))).toBe(true);
    } finally {
      await tlsServer.close();
    }
  });

  it('refuses meta contexts before structured replies, and goes on', async () => {
    const s = await session();
    expect(await s.option(NBD_OPT_LIST_META_CONTEXT, metaRequest('rp', []))).toEqual([[NBD_REP_ERR_INVALID, expect.any(String)]]);
    expect(await s.option(NBD_OPT_SET_META_CONTEXT, metaRequest('rp', [BASE_ALLOCATION]))).toEqual([[NBD_REP_ERR_INVALID, expect.any(String)]]);
    await s.go();
    // without structured replies a read is a simple reply, and BLOCK_STATUS has no context to answer for
    const read = await s.command(NBD_CMD_READ, 0, 100, 512);
    expect(read).toMatchObject({ simple: true, error: 0 });
    expect(read.data.equals(data.subarray(100, 612))).toBe(true);
    expect(await s.command(NBD_CMD_BLOCK_STATUS, 0, 0, 512)).toMatchObject({ simple: true, error: EINVAL });
  });

  it('lists base:allocation for no query, for "base:" and for its name, with id 0, and nothing for other namespaces', async () => {
    const s = await session();
    await s.option(NBD_OPT_STRUCTURED_REPLY);
    const listed = [[NBD_REP_META_CONTEXT, context(0)], [NBD_REP_ACK, '']];
    expect(await s.option(NBD_OPT_LIST_META_CONTEXT, metaRequest('', []))).toEqual(listed);
    expect(await s.option(NBD_OPT_LIST_META_CONTEXT, metaRequest('rp', ['base:']))).toEqual(listed);
    expect(await s.option(NBD_OPT_LIST_META_CONTEXT, metaRequest('rp', ['base:', BASE_ALLOCATION]))).toEqual(listed);
    expect(await s.option(NBD_OPT_LIST_META_CONTEXT, metaRequest('rp', ['qemu:allocation-depth', 'qemu:dirty-bitmap:b', 'x-foo:', 'base:allocations']))).toEqual([[NBD_REP_ACK, '']]);
    // listing selects nothing
    await s.go();
    expect(await s.command(NBD_CMD_BLOCK_STATUS, 0, 0, 512)).toMatchObject({ type: NBD_REPLY_TYPE_ERROR, error: EINVAL });
  });

  it('selects base:allocation by its name only; each SET replaces the last, also one that fails', async () => {
    const s = await session();
    await s.option(NBD_OPT_STRUCTURED_REPLY);
    expect(await s.option(NBD_OPT_SET_META_CONTEXT, metaRequest('rp', ['base:']))).toEqual([[NBD_REP_ACK, '']]);
    expect(await s.option(NBD_OPT_SET_META_CONTEXT, metaRequest('', ['x-other:thing', BASE_ALLOCATION]))).toEqual([[NBD_REP_META_CONTEXT, context(1)], [NBD_REP_ACK, '']]);
    expect(await s.option(NBD_OPT_SET_META_CONTEXT, metaRequest('other', [BASE_ALLOCATION]))).toEqual([[NBD_REP_ERR_UNKNOWN, expect.stringContaining('other')]]);
    await s.go();
    expect(await s.command(NBD_CMD_BLOCK_STATUS, 0, 0, 512)).toMatchObject({ type: NBD_REPLY_TYPE_ERROR, error: EINVAL });
  });

  it('answers malformed meta context payloads with NBD_REP_ERR_INVALID, an unknown export with NBD_REP_ERR_UNKNOWN, and goes on', async () => {
    const s = await session();
    await s.option(NBD_OPT_STRUCTURED_REPLY);
    const valid = metaRequest('rp', [BASE_ALLOCATION]);
    const u32 = (n: number) => {
      const b = Buffer.alloc(4);
      b.writeUInt32BE(n >>> 0);
      return b;
    };
    const malformed: Buffer[] = [
      Buffer.alloc(0),
      Buffer.alloc(3),
      // a name longer than the payload, or than any string may be
      Buffer.concat([u32(100), Buffer.from('rp')]),
      Buffer.concat([u32(5000), Buffer.alloc(5000, 0x61), u32(0)]),
      // no query count, a count without its queries, a query longer than the payload
      Buffer.concat([u32(2), Buffer.from('rp')]),
      Buffer.concat([u32(2), Buffer.from('rp'), u32(1)]),
      Buffer.concat([u32(2), Buffer.from('rp'), u32(0xffffffff)]),
      Buffer.concat([u32(2), Buffer.from('rp'), u32(1), u32(50), Buffer.from('base:allocation')]),
      // a byte more than the queries
      Buffer.concat([valid, Buffer.from([0])]),
      valid.subarray(0, valid.length - 1),
    ];
    for (const type of [NBD_OPT_LIST_META_CONTEXT, NBD_OPT_SET_META_CONTEXT]) {
      for (const payload of malformed) expect(await s.option(type, payload)).toEqual([[NBD_REP_ERR_INVALID, expect.any(String)]]);
      expect(await s.option(type, metaRequest('nope', [BASE_ALLOCATION]))).toEqual([[NBD_REP_ERR_UNKNOWN, expect.any(String)]]);
    }
    expect(await s.option(NBD_OPT_SET_META_CONTEXT, valid)).toEqual([[NBD_REP_META_CONTEXT, context(1)], [NBD_REP_ACK, '']]);
    await s.go();
    expect(await s.command(NBD_CMD_BLOCK_STATUS, 0, 0, 512)).toMatchObject({ type: NBD_REPLY_TYPE_BLOCK_STATUS, flags: NBD_REPLY_FLAG_DONE, contextId: 1, extents: [[512, 0]] });
  });

  it('survives random meta context payloads: every one gets an answer, and the session still starts', async () => {
    const rand = prng(Number(process.env.NBD_FUZZ_SEED ?? 0xb10c));
    const int = (n: number) => Math.floor(rand() * n);
    const s = await session();
    await s.option(NBD_OPT_STRUCTURED_REPLY);
    for (let i = 0; i < 300; i++) {
      const valid = metaRequest(['rp', '', 'x'][int(3)], Array.from({ length: int(4) }, () => ['base:', BASE_ALLOCATION, 'qemu:x', ''][int(4)]));
      const payload = Buffer.from(valid);
      // flip bytes, cut or extend it
      for (let k = int(3); k > 0; k--) payload[int(payload.length)] = int(256);
      const mangled = rand() < 0.3 ? payload.subarray(0, int(payload.length)) : rand() < 0.2 ? Buffer.concat([payload, randomBytes(1 + int(8))]) : payload;
      const replies = await s.option(rand() < 0.5 ? NBD_OPT_LIST_META_CONTEXT : NBD_OPT_SET_META_CONTEXT, mangled);
      const [last] = replies[replies.length - 1];
      expect([NBD_REP_ACK, NBD_REP_ERR_INVALID, NBD_REP_ERR_UNKNOWN]).toContain(last);
    }
    await s.go();
  });

  it('describes the disk within the request, one extent for REQ_ONE, and refuses ranges beyond its end', async () => {
    const runs: DiskExtent[] = [
      { length: 4096, zero: false },
      { length: 4096, zero: false },
      { length: 8192, zero: true },
      { length: 16384, zero: false },
      { length: 32768, zero: true },
    ];
    const asked: [number, number][] = [];
    // a disk that describes more than asked: the reply stops at the request's end
    allocation = async (offset, length) => {
      asked.push([offset, length]);
      return runs;
    };
    const s = await transmitting();
    expect(await s.command(NBD_CMD_BLOCK_STATUS, 0, 1000, 20000)).toMatchObject({ contextId: 1, extents: [[8192, 0], [8192, HOLE_ZERO], [3616, 0]] });
    expect(asked).toEqual([[1000, 20000]]);
    expect(await s.command(NBD_CMD_BLOCK_STATUS, NBD_CMD_FLAG_REQ_ONE, 0, data.length)).toMatchObject({ extents: [[8192, 0]] });
    expect(await s.command(NBD_CMD_BLOCK_STATUS, 0, 0, data.length)).toMatchObject({ extents: [[8192, 0], [8192, HOLE_ZERO], [16384, 0], [32768, HOLE_ZERO]] });
    expect(await s.command(NBD_CMD_BLOCK_STATUS, 0, data.length - 512, 1024)).toMatchObject({ type: NBD_REPLY_TYPE_ERROR, flags: NBD_REPLY_FLAG_DONE, error: EINVAL });
    expect(await s.command(NBD_CMD_BLOCK_STATUS, 0, 0, 0)).toMatchObject({ type: NBD_REPLY_TYPE_ERROR, error: EINVAL });
    // a disk that tells nothing, or fails, is described as data or answered EIO
    allocation = async () => [];
    expect(await s.command(NBD_CMD_BLOCK_STATUS, 0, 512, 4096)).toMatchObject({ extents: [[4096, 0]] });
    allocation = async () => Promise.reject(new Error('index unreadable'));
    expect(await s.command(NBD_CMD_BLOCK_STATUS, 0, 512, 4096)).toMatchObject({ type: NBD_REPLY_TYPE_ERROR, error: EIO, message: '' });
    expect(await s.command(NBD_CMD_BLOCK_STATUS, NBD_CMD_FLAG_REQ_ONE, 0, 512)).toMatchObject({ type: NBD_REPLY_TYPE_ERROR, error: EIO });
  });

  it('reads as one OFFSET_DATA chunk; a read beyond the end or a failing disk is an error chunk without the reason', async () => {
    const s = await transmitting();
    const read = await s.command(NBD_CMD_READ, 0, 1000, 3000);
    expect(read).toMatchObject({ type: NBD_REPLY_TYPE_OFFSET_DATA, flags: NBD_REPLY_FLAG_DONE, offset: 1000 });
    expect(read.data.equals(data.subarray(1000, 4000))).toBe(true);
    expect(await s.command(NBD_CMD_READ, 0, data.length - 10, 20)).toMatchObject({ type: NBD_REPLY_TYPE_ERROR, flags: NBD_REPLY_FLAG_DONE, error: EINVAL });
    failReads = true;
    expect(await s.command(NBD_CMD_READ, 0, 0, 512)).toMatchObject({ type: NBD_REPLY_TYPE_ERROR, error: EIO, message: '' });
    failReads = false;
    expect((await s.command(NBD_CMD_READ, 0, 0, 512)).data.equals(data.subarray(0, 512))).toBe(true);
  });
});

/** An NBD_OPT_LIST_META_CONTEXT / NBD_OPT_SET_META_CONTEXT payload. */
function metaRequest(exportName: string, queries: string[]): Buffer {
  const string = (text: string) => {
    const bytes = Buffer.from(text);
    const length = Buffer.alloc(4);
    length.writeUInt32BE(bytes.length);
    return Buffer.concat([length, bytes]);
  };
  const count = Buffer.alloc(4);
  count.writeUInt32BE(queries.length);
  return Buffer.concat([string(exportName), count, ...queries.map(string)]);
}

/** The data of an NBD_REP_META_CONTEXT naming base:allocation, as Session.option gives it. */
function context(id: number): string {
  return `${id}:${BASE_ALLOCATION}`;
}

interface Reply {
  simple: boolean;
  flags: number;
  type: number;
  error: number;
  message: string;
  offset: number;
  data: Buffer;
  contextId: number;
  extents: [number, number][];
}

/** A client by hand: fixed newstyle with no zeroes, options and their replies, then one request at a time. */
class Session {
  private buffered = Buffer.alloc(0);
  private cookie = 0;

  private constructor(public socket: Socket) {
    this.listen(socket);
  }

  private listen(socket: Socket): void {
    socket.on('data', (chunk: Buffer) => (this.buffered = Buffer.concat([this.buffered, chunk])));
    socket.on('error', () => undefined);
  }

  /** A Unix socket path, or a TCP port on 127.0.0.1. */
  static async open(at: string | number): Promise<Session> {
    const socket = typeof at === 'number' ? createConnection(at, '127.0.0.1') : createConnection(at);
    const s = new Session(socket);
    await s.take(18);
    socket.write(Buffer.from([0, 0, 0, 3]));
    return s;
  }

  /** NBD_OPT_STARTTLS acknowledged, then the TLS handshake over the same socket. */
  async startTls(psk: NbdPsk): Promise<void> {
    expect(await this.option(NBD_OPT_STARTTLS)).toEqual([[NBD_REP_ACK, '']]);
    this.socket.removeAllListeners('data');
    const secure = (await pskStartTls(psk)(this.socket)) as Socket;
    this.listen(secure);
    this.socket = secure;
  }

  private async take(n: number): Promise<Buffer> {
    for (let waited = 0; this.buffered.length < n; waited += 5) {
      if (this.socket.destroyed || waited > 5000) throw new Error(`the server sent ${this.buffered.length} of ${n} bytes and ${this.socket.destroyed ? 'hung up' : 'went quiet'}`);
      await new Promise((resolve) => setTimeout(resolve, 5));
    }
    const out = this.buffered.subarray(0, n);
    this.buffered = this.buffered.subarray(n);
    return out;
  }

  /** Sends an option and reads its replies up to the ACK or an error: [type, data] with a meta context as "id:name". */
  async option(type: number, data: Buffer = Buffer.alloc(0)): Promise<[number, string][]> {
    const header = Buffer.alloc(16);
    header.write('IHAVEOPT', 0, 'latin1');
    header.writeUInt32BE(type, 8);
    header.writeUInt32BE(data.length, 12);
    this.socket.write(Buffer.concat([header, data]));
    const replies: [number, string][] = [];
    for (;;) {
      const head = await this.take(20);
      expect(head.readUInt32BE(8)).toBe(type);
      const replyType = head.readUInt32BE(12);
      const payload = await this.take(head.readUInt32BE(16));
      replies.push([replyType, replyType === NBD_REP_META_CONTEXT ? `${payload.readUInt32BE(0)}:${payload.toString('utf8', 4)}` : payload.toString('utf8')]);
      if (replyType === NBD_REP_ACK || replyType & NBD_REP_FLAG_ERROR) return replies;
    }
  }

  async go(): Promise<void> {
    const replies = await this.option(NBD_OPT_GO, Buffer.concat([metaRequest('rp', []).subarray(0, 6), Buffer.alloc(2)]));
    expect(replies.map(([type]) => type)).toEqual([NBD_REP_INFO, NBD_REP_INFO, NBD_REP_ACK]);
  }

  /** One request and its reply: a simple one, or the single chunk this server answers READ and BLOCK_STATUS with. */
  async command(type: number, flags: number, offset: number, length: number): Promise<Reply> {
    const request = Buffer.alloc(28);
    const cookie = ++this.cookie;
    request.writeUInt32BE(0x25609513, 0);
    request.writeUInt16BE(flags, 4);
    request.writeUInt16BE(type, 6);
    request.writeBigUInt64BE(BigInt(cookie), 8);
    request.writeBigUInt64BE(BigInt(offset), 16);
    request.writeUInt32BE(length, 24);
    this.socket.write(request);
    const magic = (await this.take(4)).readUInt32BE(0);
    const reply: Reply = { simple: false, flags: 0, type: 0, error: 0, message: '', offset: 0, data: Buffer.alloc(0), contextId: 0, extents: [] };
    if (magic === NBD_SIMPLE_REPLY_MAGIC) {
      const head = await this.take(12);
      expect(Number(head.readBigUInt64BE(4))).toBe(cookie);
      reply.simple = true;
      reply.error = head.readUInt32BE(0);
      if (reply.error === 0 && type === NBD_CMD_READ) reply.data = await this.take(length);
      return reply;
    }
    expect(magic).toBe(NBD_STRUCTURED_REPLY_MAGIC);
    const head = await this.take(16);
    expect(Number(head.readBigUInt64BE(4))).toBe(cookie);
    reply.flags = head.readUInt16BE(0);
    reply.type = head.readUInt16BE(2);
    const payload = await this.take(head.readUInt32BE(12));
    if (reply.type === NBD_REPLY_TYPE_OFFSET_DATA) {
      reply.offset = Number(payload.readBigUInt64BE(0));
      reply.data = payload.subarray(8);
    } else if (reply.type === NBD_REPLY_TYPE_BLOCK_STATUS) {
      reply.contextId = payload.readUInt32BE(0);
      for (let at = 4; at < payload.length; at += 8) reply.extents.push([payload.readUInt32BE(at), payload.readUInt32BE(at + 4)]);
    } else if (reply.type === NBD_REPLY_TYPE_ERROR) {
      reply.error = payload.readUInt32BE(0);
      reply.message = payload.toString('utf8', 6, 6 + payload.readUInt16BE(4));
    }
    return reply;
  }
}
