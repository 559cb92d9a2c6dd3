import { createHash, randomBytes } from 'node:crypto';
import { AddressInfo, connect, Socket } from 'node:net';
import { createServer, Server, TLSSocket } from 'node:tls';
import { pskStartTls } from './tls-psk';

/**
 * Against a real TLS 1.3 PSK server (node's own, on an ephemeral loopback port): what the client writes arrives
 * whole and in order, and a large buffer is never handed to the TLS layer inside a multi-buffer write, which
 * copies every buffer of it into one allocation before encrypting.
 */
describe('pskStartTls', () => {
  const psk = { identity: 'sendense', key: randomBytes(32).toString('hex') };
  let server: Server;
  let received: Promise<Buffer>;

  beforeEach(async () => {
    let resolveReceived!: (data: Buffer) => void;
    received = new Promise((resolve) => (resolveReceived = resolve));
    server = createServer(
      { minVersion: 'TLSv1.3', ciphers: 'TLS_AES_128_GCM_SHA256', pskCallback: (_socket, identity) => (identity === psk.identity ? Buffer.from(psk.key, 'hex') : null) },
      (socket) => {
        const parts: Buffer[] = [];
        socket.on('data', (chunk: Buffer) => parts.push(chunk));
        socket.on('end', () => {
          resolveReceived(Buffer.concat(parts));
          socket.end();
        });
      },
    );
    await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  });

  afterEach(async () => {
    await new Promise((resolve) => server.close(resolve));
  });

  async function open(): Promise<TLSSocket> {
    const plain = connect({ host: '127.0.0.1', port: (server.address() as AddressInfo).port });
    await new Promise((resolve, reject) => plain.once('connect', resolve).once('error', reject));
    return (await pskStartTls(psk)(plain as Socket)) as TLSSocket;
  }

  it('sends corked headers and large payloads intact and in order, no large buffer inside a multi-buffer write', async () => {
    const socket = await open();
    // What reaches node's TLS layer (TLSWrap): each call is one SSL_write, of one buffer or of several copied into one.
    type Handle = { writev: (req: unknown, chunks: unknown[], allBuffers: boolean) => number; writeBuffer: (req: unknown, data: Buffer) => number };
    const handle = (socket as unknown as { _handle: Handle })._handle;
    const multiBufferWrites: number[][] = [];
    let nativeWrites = 0;
    const { writev, writeBuffer } = handle;
    handle.writev = function (req, chunks, allBuffers) {
      nativeWrites++;
      multiBufferWrites.push(chunks.filter((c): c is Buffer => Buffer.isBuffer(c)).map((c) => c.length));
      return writev.call(this, req, chunks, allBuffers);
    };
    handle.writeBuffer = function (req, data) {
      nativeWrites++;
      return writeBuffer.call(this, req, data);
    };

    const sent: Buffer[] = [];
    const write = (data: Buffer) => {
      sent.push(data);
      socket.write(data);
    };
    // What NbdClient does: a tick's requests corked together, headers of 28 bytes before their payloads.
    socket.cork();
    write(randomBytes(28));
    write(randomBytes(4 * 1024 * 1024));
    write(randomBytes(28));
    write(randomBytes(1024 * 1024 + 5));
    write(randomBytes(28));
    socket.uncork();
    // Headers alone (a tick of READ requests) still leave together.
    socket.cork();
    for (let i = 0; i < 8; i++) write(randomBytes(28));
    socket.uncork();
    // Written while the earlier writes are still in progress: the stream batches these itself.
    write(randomBytes(28));
    write(randomBytes(2 * 1024 * 1024));
    await new Promise<void>((resolve) => socket.end(resolve));

    const expected = Buffer.concat(sent);
    const got = await received;
    expect(got.length).toBe(expected.length);
    expect(createHash('sha256').update(got).digest('hex')).toBe(createHash('sha256').update(expected).digest('hex'));
    expect(multiBufferWrites.flat().filter((length) => length >= 64 * 1024)).toEqual([]);
    // small chunks still share writes (the eight corked headers are not eight records)
    expect(nativeWrites).toBeLessThan(sent.length - 7);
  });
});
