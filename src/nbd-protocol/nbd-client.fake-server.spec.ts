import { connect } from 'node:net';
import { FakeServer, FakeServerOptions, startFakeServer } from '../../test/fixtures/nbd/fake-server';
import { blockStatus, errorChunk, noneChunk, offsetData, simpleReply } from '../../test/fixtures/nbd/wire';
import { NbdCommandError, NbdConnectionClosedError, NbdHandshakeError, NbdProtocolError } from './errors';
import { NbdClient, NbdClientOptions } from './nbd-client';
import { openNbd } from './open-nbd';

/**
 * The client against a scripted in-process server: the cases real servers
 * never produce (garbage, dropped connections, odd block sizes, partial block
 * status), on both receive paths (plain 'data' events and zero-copy onread).
 */

const servers: FakeServer[] = [];
const clients: NbdClient[] = [];

async function server(options: FakeServerOptions): Promise<FakeServer> {
  const s = await startFakeServer(options);
  servers.push(s);
  return s;
}

type Path = 'plain' | 'direct';

async function open(s: FakeServer, path: Path, options: NbdClientOptions = {}): Promise<NbdClient> {
  let client: NbdClient;
  if (path === 'direct') client = await openNbd(s.uri, options);
  else {
    const socket = connect(s.path);
    await new Promise<void>((resolve, reject) => socket.once('connect', resolve).once('error', reject));
    client = await NbdClient.connect(socket, { exportName: 'disk', ...options });
  }
  clients.push(client);
  return client;
}

afterEach(async () => {
  for (const c of clients.splice(0)) c.destroy();
  for (const s of servers.splice(0)) await s.close();
});

function pattern(offset: number, length: number): Buffer {
  const b = Buffer.alloc(length);
  for (let i = 0; i < length; i++) b[i] = (offset + i) % 251;
  return b;
}

describe.each(['plain', 'direct'] as Path[])('NbdClient against a fake server (%s receive path)', (path) => {
  it('matches out-of-order replies to many requests in flight by cookie', async () => {
    const held: Buffer[] = [];
    const s = await server({
      onRequest: (r, socket) => {
        held.push(offsetData(r.cookie, r.offset, pattern(r.offset, r.length), true));
        if (held.length === 20) socket.write(Buffer.concat(held.reverse()));
      },
    });
    const c = await open(s, path);
    const reads = Array.from({ length: 20 }, (_, i) => c.read(i * 8192, 4096 + i * 100));
    expect(c.inFlight).toBe(20);
    const results = await Promise.all(reads);
    results.forEach((r, i) => expect(r.equals(pattern(i * 8192, 4096 + i * 100))).toBe(true));
    expect(new Set(s.connections[0].requests.map((r) => r.cookie)).size).toBe(20);
  });

  it('splits READ and WRITE at the advertised maximum and honours the minimum block size', async () => {
    const s = await server({
      blockSize: [512, 4096, 65536],
      onRequest: (r, socket) => {
        if (r.type === 0) socket.write(offsetData(r.cookie, r.offset, pattern(r.offset, r.length), true));
        else socket.write(simpleReply(r.cookie));
      },
    });
    const c = await open(s, path);
    expect(c.blockSize).toEqual({ minimum: 512, preferred: 4096, maximum: 65536, advertised: true });
    expect(c.maxPayload).toBe(65536);
    const data = await c.read(4096, 200 * 1024);
    expect(data.equals(pattern(4096, 200 * 1024))).toBe(true);
    await c.write(0, Buffer.alloc(150 * 1024, 1));
    const lengths = s.connections[0].requests.map((r) => [r.type, r.offset, r.length]);
    expect(lengths).toEqual([
      [0, 4096, 65536],
      [0, 4096 + 65536, 65536],
      [0, 4096 + 131072, 65536],
      [0, 4096 + 196608, 8192],
      [1, 0, 65536],
      [1, 65536, 65536],
      [1, 131072, 22528],
    ]);
    await expect(c.read(100, 512)).rejects.toMatchObject({ code: 'EINVAL', local: true, message: expect.stringMatching(/minimum block size 512/) });
    await expect(c.read(1024 * 1024 - 512, 1024)).rejects.toMatchObject({ code: 'EINVAL', message: expect.stringMatching(/beyond the export size/) });
  });

  it('surfaces every server error with its errno name, command and offset', async () => {
    const errnos = [1, 5, 12, 22, 28, 75, 95, 108, 4242];
    const s = await server({
      onRequest: (r, socket) => {
        const errno = errnos[r.offset / 4096];
        socket.write(r.offset % 8192 === 0 ? simpleReply(r.cookie, errno) : errorChunk(r.cookie, errno, `no luck at ${r.offset}`));
      },
    });
    const c = await open(s, path);
    const results = await Promise.allSettled(errnos.map((_, i) => c.write(i * 4096, Buffer.alloc(512))));
    const errors = results.map((r) => (r as PromiseRejectedResult).reason as NbdCommandError);
    expect(errors.map((e) => e.code)).toEqual(['EPERM', 'EIO', 'ENOMEM', 'EINVAL', 'ENOSPC', 'EOVERFLOW', 'ENOTSUP', 'ESHUTDOWN', 'E4242']);
    expect(errors.every((e) => e instanceof NbdCommandError && e.command === 'WRITE')).toBe(true);
    expect(errors[0].message).toBe('NBD WRITE at offset 0 length 512 failed: EPERM (operation not permitted)');
    expect(errors[1].message).toBe('NBD WRITE at offset 4096 length 512 failed: EIO (input/output error): no luck at 4096');
    expect(errors[4]).toMatchObject({ errno: 28, offset: 16384, length: 512, serverMessage: undefined });
    // ESHUTDOWN (in the list) starts a soft disconnect; the other errors alone leave the connection open
    expect(c.isOpen).toBe(false);
    expect(await c.closed).toBeUndefined();
  });

  it('rejects all pending requests and closes when the server sends garbage', async () => {
    const s = await server({
      onRequest: (r, socket) => {
        if (r.offset === 3 * 4096) socket.write(Buffer.from('HTTP/1.1 400 Bad Request\r\n\r\n'));
      },
    });
    const c = await open(s, path);
    const pending = [0, 1, 2, 3].map((i) => c.read(i * 4096, 4096));
    const results = await Promise.allSettled(pending);
    for (const r of results) {
      expect(r.status).toBe('rejected');
      expect((r as PromiseRejectedResult).reason).toBeInstanceOf(NbdProtocolError);
      expect((r as PromiseRejectedResult).reason.message).toMatch(/bad reply magic 0x48545450/);
    }
    expect(await c.closed).toBeInstanceOf(NbdProtocolError);
    await expect(c.read(0, 512)).rejects.toBeInstanceOf(NbdConnectionClosedError);
    await expect(c.read(0, 512)).rejects.toThrow(/connection is closed: NBD protocol error: bad reply magic/);
  });

  it('rejects pending requests when the server closes in the middle of a reply', async () => {
    const s = await server({
      onRequest: (r, socket) => {
        const full = offsetData(r.cookie, r.offset, Buffer.alloc(r.length, 1), true);
        socket.end(full.subarray(0, 100));
      },
    });
    const c = await open(s, path);
    const a = c.read(0, 65536);
    const b = c.writeZeroes(65536, 4096);
    await expect(a).rejects.toThrow(/closed the connection in the middle of a reply with 2 request\(s\) pending/);
    await expect(b).rejects.toBeInstanceOf(NbdConnectionClosedError);
  });

  it('gives up on a server that stops in the middle of a reply and stays silent', async () => {
    const s = await server({
      onRequest: (r, socket) => socket.write(offsetData(r.cookie, r.offset, Buffer.alloc(r.length, 1), true).subarray(0, 1000)),
    });
    const c = await open(s, path, { replyTimeoutMs: 300 });
    const began = Date.now();
    await expect(c.read(0, 65536)).rejects.toThrow(/sent nothing for \d+ ms with 1 request\(s\) pending \(stopped in the middle of a reply\)/);
    expect(Date.now() - began).toBeLessThan(2000);
    expect(await c.closed).toBeInstanceOf(NbdConnectionClosedError);
  });

  it('treats an oversize or unsolicited reply as a protocol violation', async () => {
    const s = await server({
      onRequest: (r, socket) => {
        socket.write(offsetData(r.cookie, r.offset, Buffer.alloc(r.length + 1), true));
      },
    });
    const c = await open(s, path);
    await expect(c.read(0, 4096)).rejects.toThrow(/carries 4097 bytes, more than the 4096 requested/);

    const s2 = await server({ onRequest: () => undefined });
    const c2 = await open(s2, path);
    s2.connections[0].socket.write(simpleReply(12345));
    expect(await c2.closed).toEqual(expect.objectContaining({ message: expect.stringMatching(/unknown cookie 12345/) }));
  });

  it('loops BLOCK_STATUS until the range is covered, clipping overshoot and merging equal extents', async () => {
    const s = await server({
      contexts: { 'base:allocation': 7 },
      onRequest: (r, socket) => {
        // truth: 32 KiB regions alternating data (0) and zero (3); each answer covers at most 64 KiB
        // in pieces cut at 16 KiB boundaries, and overshoots the request by 4 KiB
        const extents: [number, number][] = [];
        const end = r.offset + Math.min(r.length, 65536) + 4096;
        for (let pos = r.offset; pos < end; ) {
          const next = Math.min(end, (Math.floor(pos / 16384) + 1) * 16384);
          extents.push([next - pos, Math.floor(pos / 32768) % 2 ? 3 : 0]);
          pos = next;
        }
        socket.write(blockStatus(r.cookie, 7, extents));
      },
    });
    const c = await open(s, path, { metaContexts: ['base:allocation'] });
    const map = await c.blockStatusAll(16384, 131072);
    expect(map.get('base:allocation')).toEqual([
      { offset: 16384, length: 16384, flags: 0 },
      { offset: 32768, length: 32768, flags: 3 },
      { offset: 65536, length: 32768, flags: 0 },
      { offset: 98304, length: 32768, flags: 3 },
      { offset: 131072, length: 16384, flags: 0 },
    ]);
    expect(s.connections[0].requests.length).toBeGreaterThan(1);
    const raw = await c.blockStatus(0, 16384);
    expect(raw.get('base:allocation')).toEqual([
      { offset: 0, length: 16384, flags: 0 },
      { offset: 16384, length: 4096, flags: 0 },
    ]);
  });

  it('answers ESHUTDOWN with a soft disconnect once the requests in flight are answered', async () => {
    const s = await server({
      onRequest: (r, socket) => {
        if (r.offset === 0) socket.write(errorChunk(r.cookie, 108, 'going down'));
        else setTimeout(() => socket.write(simpleReply(r.cookie)), 30);
      },
    });
    const c = await open(s, path);
    const first = c.write(0, Buffer.alloc(512));
    const second = c.write(4096, Buffer.alloc(512));
    await expect(first).rejects.toMatchObject({ code: 'ESHUTDOWN', serverMessage: 'going down' });
    expect(c.isOpen).toBe(false);
    await expect(c.write(8192, Buffer.alloc(512))).rejects.toThrow(/connection is closing/);
    await second;
    expect(await c.closed).toBeUndefined();
    expect(s.connections[0].requests.map((r) => r.type)).toEqual([1, 1, 2]);
  });

  it('waits for requests in flight, then sends DISC and closes cleanly', async () => {
    let last: (() => void) | undefined;
    const s = await server({
      onRequest: (r, socket) => {
        last = () => socket.write(simpleReply(r.cookie));
      },
    });
    const c = await open(s, path);
    const w = c.write(0, Buffer.alloc(512));
    const closing = c.close();
    await expect(c.write(512, Buffer.alloc(512))).rejects.toThrow(/connection is closing/);
    await new Promise((r) => setTimeout(r, 20));
    expect(s.connections[0].requests.map((r) => r.type)).toEqual([1]);
    last!();
    await w;
    await closing;
    expect(s.connections[0].requests.map((r) => r.type)).toEqual([1, 2]);
    expect(await c.closed).toBeUndefined();
  });
});

describe('NbdClient handshake against a fake server', () => {
  it('fails clearly when a requested meta context (dirty bitmap) is not offered', async () => {
    const s = await server({ contexts: { 'base:allocation': 1 } });
    const error = await open(s, 'direct', { metaContexts: ['base:allocation', 'qemu:dirty-bitmap:nope'] }).catch((e: unknown) => e);
    expect(error).toBeInstanceOf(NbdHandshakeError);
    expect(error).toMatchObject({ code: 'NBD_META_CONTEXT_UNAVAILABLE' });
    expect((error as Error).message).toMatch(/does not offer meta context qemu:dirty-bitmap:nope.*bitmap "nope" does not exist.*offered: base:allocation/);
  });

  it('reports an unknown export with the server reply name and message', async () => {
    const s = await server({ exports: ['other'] });
    await expect(open(s, 'plain')).rejects.toMatchObject({ code: 'NBD_REP_ERR_UNKNOWN', message: expect.stringMatching(/export "disk".*export 'disk' not present/) });
  });

  it('falls back to NBD_OPT_EXPORT_NAME when the server lacks NBD_OPT_GO', async () => {
    const s = await server({ noGo: true, size: 65536, onRequest: (r, socket) => socket.write(noneChunk(r.cookie)) });
    const c = await open(s, 'plain');
    expect(c.size).toBe(65536);
    expect(c.blockSize.advertised).toBe(false);
    expect(c.maxPayload).toBe(32 * 1024 * 1024);
    await c.flush();
  });

  it('negotiates without structured replies when the server refuses them', async () => {
    const s = await server({ structured: false, onRequest: (r, socket) => socket.write(simpleReply(r.cookie, 0, pattern(r.offset, r.length))) });
    const c = await open(s, 'direct');
    expect(c.structuredReplies).toBe(false);
    expect((await c.read(512, 1000)).equals(pattern(512, 1000))).toBe(true);
    const s2 = await server({ structured: false });
    await expect(open(s2, 'plain', { metaContexts: ['base:allocation'] })).rejects.toThrow(/does not support structured replies/);
  });

  it('rejects a peer that is not an NBD server, one that hangs up, and one that stays silent', async () => {
    const http = await server({ raw: (socket) => socket.write('HTTP/1.1 200 OK\r\n\r\nhello world') });
    await expect(open(http, 'plain')).rejects.toThrow(/not an NBD server: bad initial magic/);
    const hangup = await server({ raw: (socket) => socket.end(Buffer.from('4e42444d', 'hex')) });
    await expect(open(hangup, 'direct')).rejects.toThrow(/server closed the connection during the NBD handshake/);
    const silent = await server({ raw: () => undefined });
    const began = Date.now();
    await expect(open(silent, 'direct', { handshakeTimeoutMs: 200 })).rejects.toThrow(/did not complete within 200 ms/);
    expect(Date.now() - began).toBeLessThan(2000);
  });

  it('rejects absurd block size constraints', async () => {
    const s = await server({ blockSize: [3, 4096, 65536] });
    await expect(open(s, 'plain')).rejects.toThrow(/minimum block size 3 is not a power of two/);
    const s2 = await server({ blockSize: [512, 4096, 1000] });
    await expect(open(s2, 'plain')).rejects.toThrow(/maximum block size 1000 is not a multiple/);
  });
});

describe('NbdClient asked for TLS', () => {
  it('fails the connection when the server does not take NBD_OPT_STARTTLS, instead of going on in the clear', async () => {
    const s = await server({ onRequest: () => undefined });
    const upgrade = jest.fn();
    await expect(open(s, 'direct', { startTls: upgrade })).rejects.toThrow(/NBD_OPT_STARTTLS refused by server with NBD_REP_ERR_UNSUP/);
    expect(upgrade).not.toHaveBeenCalled();
    // The server never got as far as an export name or another option.
    expect(s.connections[0]?.requests ?? []).toEqual([]);
  });
});
