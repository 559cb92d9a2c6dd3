import { randomBytes } from 'node:crypto';
import { mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { createConnection } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { runProcess } from '../process/run-process';
import { NbdServer, ReadableDisk } from './nbd-server';
import { openNbd } from './open-nbd';

/** The read-only server against real NBD clients: libnbd's nbdinfo and nbdcopy, and our own client. */
describe('NbdServer', () => {
  let dir: string;
  let socket: string;
  let server: NbdServer;
  const data = randomBytes(5 * 1024 * 1024 + 512);
  const reads: number[] = [];
  const disk: ReadableDisk = {
    size: data.length,
    read: async (offset, length, into) => {
      reads.push(length);
      const out = into ?? Buffer.alloc(length);
      data.copy(out, 0, offset, offset + length);
      return out;
    },
  };
  const uri = (name = 'rp') => `nbd+unix:///${name}?socket=${socket}`;

  beforeAll(async () => {
    dir = mkdtempSync(join(tmpdir(), 'sendense-nbd-server-'));
    socket = join(dir, 'nbd.sock');
    server = await NbdServer.listen(socket, 'rp', disk);
  });
  afterAll(async () => {
    await server.close();
    rmSync(dir, { recursive: true, force: true });
  });

  it('answers nbdinfo with the size and a read-only export', async () => {
    const info = JSON.parse((await runProcess('nbdinfo', ['--json', uri()])).stdout);
    expect(info.exports[0]).toMatchObject({ 'export-size': data.length, 'is_read_only': true, 'can_multi_conn': true, 'can_flush': true, 'can_trim': false, 'can_zero': false });
  });

  it('maps a disk that tells no holes as data throughout', async () => {
    const map = JSON.parse((await runProcess('nbdinfo', ['--map', '--json', uri()])).stdout);
    expect(map).toEqual([expect.objectContaining({ offset: 0, length: data.length, type: 0 })]);
  });

  it('serves every byte to nbdcopy over several connections', async () => {
    const copy = join(dir, 'copy.raw');
    await runProcess('nbdcopy', ['--connections=4', '--requests=8', uri(), copy]);
    expect(readFileSync(copy).equals(data)).toBe(true);
  });

  it('serves our client, refuses writes, reads beyond the end and unknown exports, and stays up', async () => {
    const client = await openNbd(uri());
    try {
      expect(client.size).toBe(data.length);
      expect((await client.read(4096, 65536 + 512)).equals(data.subarray(4096, 4096 + 65536 + 512))).toBe(true);
      await expect(client.read(data.length - 512, 1024)).rejects.toThrow();
    } finally {
      await client.close();
    }
    await expect(openNbd(uri('other'))).rejects.toThrow();
    // a client that ignores the read-only flag gets EPERM, and the server its payload consumed
    const raw = await rawSession();
    const write = request(1, 0, 4096);
    raw.socket.write(Buffer.concat([write, Buffer.alloc(4096, 7)]));
    raw.socket.write(request(0, 0, 512));
    const replies = await raw.replies(2, 512);
    expect(replies.map((r) => r.error)).toEqual([1, 0]);
    expect(replies[1].data.equals(data.subarray(0, 512))).toBe(true);
    raw.socket.destroy();
    expect((await openNbd(uri())).size).toBe(data.length);
  });

  it('stops: the socket is gone and clients are dropped', async () => {
    const other = join(dir, 'other.sock');
    const second = await NbdServer.listen(other, 'x', disk);
    const client = await openNbd(`nbd+unix:///x?socket=${other}`);
    await second.close();
    await expect(client.read(0, 512)).rejects.toThrow();
    await expect(openNbd(`nbd+unix:///x?socket=${other}`)).rejects.toThrow();
  });

  /** A transmission-phase request header. */
  function request(type: number, offset: number, length: number): Buffer {
    const header = Buffer.alloc(28);
    header.writeUInt32BE(0x25609513, 0);
    header.writeUInt16BE(type, 6);
    header.writeBigUInt64BE(BigInt(reads.length + 1), 8);
    header.writeBigUInt64BE(BigInt(offset), 16);
    header.writeUInt32BE(length, 24);
    return header;
  }

  /** Handshake by hand (NBD_OPT_EXPORT_NAME), then simple replies parsed as they come. */
  async function rawSession() {
    const s = createConnection(socket);
    let buffered = Buffer.alloc(0);
    s.on('data', (chunk) => (buffered = Buffer.concat([buffered, chunk])));
    const until = async (n: number) => {
      while (buffered.length < n) await new Promise((resolve) => setTimeout(resolve, 5));
    };
    await until(18);
    buffered = Buffer.alloc(0);
    const name = Buffer.from('rp');
    const option = Buffer.alloc(16);
    option.write('IHAVEOPT', 0, 'latin1');
    option.writeUInt32BE(1, 8);
    option.writeUInt32BE(name.length, 12);
    s.write(Buffer.concat([Buffer.from([0, 0, 0, 3]), option, name]));
    await until(10);
    buffered = buffered.subarray(10);
    return {
      socket: s,
      replies: async (count: number, readLength: number) => {
        const out: { error: number; data: Buffer }[] = [];
        for (let i = 0; i < count; i++) {
          await until(16);
          const error = buffered.readUInt32BE(4);
          const length = error === 0 ? readLength : 0;
          await until(16 + length);
          out.push({ error, data: buffered.subarray(16, 16 + length) });
          buffered = buffered.subarray(16 + length);
        }
        return out;
      },
    };
  }
});
