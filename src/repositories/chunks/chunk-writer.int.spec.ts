import { randomBytes } from 'node:crypto';
import { promises as fs } from 'node:fs';
import { createConnection } from 'node:net';
import { join } from 'node:path';
import execa from 'execa';
import { makeTempDir, removeTempDir } from '../../../test/fixtures/qcow2/chain-builder';
import { ext4Image } from '../../../test/fixtures/restore/filesystem-images';
import { NbdServer } from '../../nbd-protocol/nbd-server';
import { openNbd } from '../../nbd-protocol/open-nbd';
import { pskStartTls } from '../../nbd-protocol/tls-psk';
import { CHUNK_SIZE } from './chunk-format';
import { ChunkStore } from './chunk-store';

const MiB = 1024 * 1024;

/** A new point written through the hub's NBD server, as an agent writes a backup: by parts, over TLS, by real clients. */
describe('ChunkPointWriter: a point written through NBD', () => {
  let dir: string;
  const key = randomBytes(32);
  beforeAll(async () => (dir = await makeTempDir('chunk-writer')));
  afterAll(async () => removeTempDir(dir));

  it('takes whole blocks, parts of blocks, zeros and the short last block; a point that follows another changes only what is written', async () => {
    const store = await ChunkStore.open(join(dir, 'parts'), { key });
    const size = 3 * MiB + 5000;
    const expected = Buffer.alloc(size);
    const writer = await store.writePoint(size, null);
    const write = async (offset: number, data: Buffer) => {
      data.copy(expected, offset);
      await writer.write(offset, data);
    };
    await write(0, randomBytes(MiB));
    await write(70_000, randomBytes(3000));
    await write(5 * CHUNK_SIZE + 100, randomBytes(200 * 1024));
    expected.fill(0, 300_000, 400_000);
    await writer.writeZeroes(300_000, 100_000);
    await write(size - 5000, randomBytes(5000));
    await write(CHUNK_SIZE, Buffer.alloc(CHUNK_SIZE));
    // two parts of one block at once: both land
    await Promise.all([write(20 * CHUNK_SIZE + 10, randomBytes(100)), write(20 * CHUNK_SIZE + 5000, randomBytes(100))]);
    expect((await writer.read(0, size)).equals(expected)).toBe(true);
    await writer.commit('vm1/rp-1/disk0');
    await writer.close();

    const index = await store.readPoint('vm1/rp-1/disk0');
    expect(index.blocks[1]).toBeNull();
    expect(index.blocks[30]).toBeNull();
    const first = await store.openPoint('vm1/rp-1/disk0');
    expect((await first.read(0, size)).equals(expected)).toBe(true);

    const chunks = store.stats.chunks;
    const next = await store.writePoint(size, 'vm1/rp-1/disk0');
    const changed = Buffer.from(expected);
    randomBytes(10).copy(changed, 70_010);
    await next.write(70_010, changed.subarray(70_010, 70_020));
    await next.commit('vm1/rp-2/disk0');
    await next.close();
    expect(store.stats.chunks - chunks).toBe(1);
    const second = await store.openPoint('vm1/rp-2/disk0');
    expect((await second.read(0, size)).equals(changed)).toBe(true);
    expect((await first.read(0, size)).equals(expected)).toBe(true);
    await first.close();
    await second.close();
    await expect(store.writePoint(size - CHUNK_SIZE, 'vm1/rp-1/disk0')).rejects.toThrow(/a point follows one of its own size or larger/);
  });

  it('a disk that grew since its base (an incremental after a resize): the base, then zeros; its short last block becomes whole', async () => {
    const store = await ChunkStore.open(join(dir, 'grown'), { key });
    const small = 2 * CHUNK_SIZE + 5000;
    const before = randomBytes(small);
    const writer = await store.writePoint(small, null);
    await writer.write(0, before);
    await writer.commit('vm1/rp-1/disk0');
    await writer.close();

    const size = 5 * CHUNK_SIZE + 100;
    const expected = Buffer.alloc(size);
    before.copy(expected);
    const grown = await store.writePoint(size, 'vm1/rp-1/disk0');
    // nothing written yet: what it reads already is the base, then zeros
    expect((await grown.read(0, size)).equals(expected)).toBe(true);
    // a write into the grown part, and one into the base's old last block past its old end
    const late = randomBytes(3000);
    late.copy(expected, 4 * CHUNK_SIZE);
    await grown.write(4 * CHUNK_SIZE, late);
    const past = randomBytes(100);
    past.copy(expected, small + 10);
    await grown.write(small + 10, past);
    await grown.commit('vm1/rp-2/disk0');
    await grown.close();

    const reopened = await ChunkStore.open(join(dir, 'grown'), { key });
    const point = await reopened.openPoint('vm1/rp-2/disk0');
    expect(point.size).toBe(size);
    expect((await point.read(0, size)).equals(expected)).toBe(true);
    await point.close();
    const base = await reopened.openPoint('vm1/rp-1/disk0');
    expect((await base.read(0, small)).equals(before)).toBe(true);
    await base.close();
  });

  describe('over TCP with TLS-PSK, as an agent reaches the hub', () => {
    let raw: string;
    const size = 24 * MiB + 4096;
    const psk = { identity: 'sendense', key: randomBytes(32) };

    beforeAll(async () => {
      const tree = join(dir, 'tree');
      await fs.mkdir(tree, { recursive: true });
      await execa('cp', ['-a', '/usr/share/common-licenses', join(tree, 'licenses')]);
      await fs.writeFile(join(tree, 'random.bin'), randomBytes(2 * MiB));
      raw = join(dir, 'disk.raw');
      await ext4Image('target')(raw, size, tree);
    });

    async function served(name: string, work: (port: number, store: ChunkStore) => Promise<void>): Promise<ChunkStore> {
      const store = await ChunkStore.open(join(dir, name), { key });
      const writer = await store.writePoint(size, null);
      const server = await NbdServer.listenTcp('127.0.0.1', 0, { exportName: 'target', writable: true, disk: writer, tls: psk });
      try {
        await work(server.port, store);
      } finally {
        await server.close();
      }
      await writer.commit('vm1/rp-1/disk0');
      await writer.close();
      return store;
    }

    /** qemu-img compares the committed point, read through the hub's read-only server, with the disk. */
    async function compare(store: ChunkStore): Promise<void> {
      const view = await store.openPoint('vm1/rp-1/disk0');
      const socket = join(dir, `${randomBytes(4).toString('hex')}.sock`);
      const server = await NbdServer.listen(socket, 'point', view);
      try {
        await execa('qemu-img', ['compare', '-f', 'raw', '-F', 'raw', `nbd+unix:///point?socket=${socket}`, raw]);
      } finally {
        await server.close();
        await view.close();
      }
    }

    it("takes a disk from the agent's NBD client over TLS, and refuses a client without TLS or with another key", async () => {
      const store = await served('agent', async (port) => {
        await expect(openNbd(`nbd://127.0.0.1:${port}/target`)).rejects.toThrow(/TLS_REQD/);
        await expect(openNbd(`nbd://127.0.0.1:${port}/target`, { startTls: pskStartTls({ identity: psk.identity, key: randomBytes(32).toString('hex') }) })).rejects.toThrow(/TLS/);
        const client = await openNbd(`nbd://127.0.0.1:${port}/target`, { startTls: pskStartTls({ identity: psk.identity, key: psk.key.toString('hex') }) });
        const disk = await fs.readFile(raw);
        const writes: Promise<void>[] = [];
        for (let at = 0; at < size; at += 4 * MiB) {
          const piece = disk.subarray(at, Math.min(size, at + 4 * MiB));
          writes.push(piece.equals(Buffer.alloc(piece.length)) ? client.writeZeroes(at, piece.length) : client.write(at, piece));
        }
        await Promise.all(writes);
        await client.flush();
        await client.close();
      });
      await compare(store);
    });

    it('drops a client that asks for TLS and never finishes its handshake', async () => {
      const store = await ChunkStore.open(join(dir, 'stalled'), { key });
      const writer = await store.writePoint(size, null);
      const server = await NbdServer.listenTcp('127.0.0.1', 0, { exportName: 'target', writable: true, disk: writer, tls: { ...psk, handshakeTimeoutMs: 300 } });
      try {
        const socket = createConnection({ host: '127.0.0.1', port: server.port });
        const closed = new Promise<number>((resolve) => socket.once('close', () => resolve(Date.now())));
        let received = Buffer.alloc(0);
        socket.on('data', (d: Buffer) => (received = Buffer.concat([received, d])));
        socket.on('error', () => undefined);
        await new Promise((r) => socket.once('connect', r));
        // client flags (fixed newstyle), then NBD_OPT_STARTTLS; then silence instead of a ClientHello
        const option = Buffer.alloc(16);
        option.writeBigUInt64BE(0x49484156454f5054n, 0);
        option.writeUInt32BE(5, 8);
        socket.write(Buffer.concat([Buffer.from([0, 0, 0, 1]), option]));
        const asked = Date.now();
        const at = await closed;
        // the greeting (18 bytes) and the ACK of STARTTLS (20) came, then the server hung up
        expect(received.length).toBe(18 + 20);
        expect(received.readUInt32BE(18 + 12)).toBe(1);
        expect(at - asked).toBeLessThan(5000);
      } finally {
        await server.close();
        await writer.close();
      }
    });

    it("takes a disk from libnbd's nbdcopy over TLS-PSK", async () => {
      const keys = join(dir, 'keys.psk');
      await fs.writeFile(keys, `${psk.identity}:${psk.key.toString('hex')}\n`, { mode: 0o600 });
      const store = await served('nbdcopy', async (port) => {
        await execa('nbdcopy', ['--connections=1', raw, `nbds://${psk.identity}@127.0.0.1:${port}/target?tls-psk-file=${keys}`]);
      });
      await compare(store);
    });
  });
});
