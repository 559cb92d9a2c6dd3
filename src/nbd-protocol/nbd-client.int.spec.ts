import { randomBytes } from 'node:crypto';
import { join } from 'node:path';
import { createImage, MiB, qemuImg, qemuIo } from '../../test/fixtures/nbd/images';
import { isRunning, NbdServer, removeDir, serverPids, startNbdkit, startQemuNbd, stopAllServers, tempDir } from '../../test/fixtures/nbd/servers';
import { BASE_ALLOCATION, NBD_STATE_HOLE, NBD_STATE_ZERO } from './constants';
import { NbdCommandError, NbdHandshakeError } from './errors';
import { NbdClient } from './nbd-client';
import { openNbd } from './open-nbd';

/** The client against real servers: qemu-nbd (qcow2 over TCP, raw over a Unix socket) and nbdkit. */

jest.setTimeout(60_000);

let dir: string;
const clients: NbdClient[] = [];
const started: number[] = [];

async function client(uri: string, metaContexts: string[] = [BASE_ALLOCATION]): Promise<NbdClient> {
  const c = await openNbd(uri, { metaContexts });
  clients.push(c);
  return c;
}

const targets: Record<string, () => Promise<NbdServer>> = {
  'qemu-nbd qcow2 over TCP': async () => startQemuNbd({ dir, file: await createImage(join(dir, 'rw.qcow2'), 'qcow2', 64 * MiB), format: 'qcow2' }),
  'qemu-nbd raw over a Unix socket': async () => startQemuNbd({ dir, file: await createImage(join(dir, 'rw.raw'), 'raw', 64 * MiB), format: 'raw', unix: true }),
  'nbdkit memory plugin': async () => startNbdkit(dir, ['memory', '64M']),
};

beforeAll(() => {
  dir = tempDir('sendense-nbd-client-int-');
});

afterEach(async () => {
  await Promise.all(clients.splice(0).map((c) => c.close().catch(() => c.destroy())));
});

afterAll(async () => {
  const pids = serverPids();
  started.push(...pids);
  await stopAllServers();
  for (const pid of started) expect(isRunning(pid)).toBe(false);
  removeDir(dir);
});

describe.each(Object.keys(targets))('NbdClient against %s', (name) => {
  let server: NbdServer;

  beforeAll(async () => {
    server = await targets[name]();
    started.push(server.pid);
  });

  it('completes the handshake with structured replies, base:allocation and block sizes', async () => {
    const c = await client(server.uri);
    expect(c.size).toBe(64 * MiB);
    expect(c.structuredReplies).toBe(true);
    expect([...c.metaContexts.keys()]).toEqual([BASE_ALLOCATION]);
    expect(c.readOnly).toBe(false);
    expect(c.canFlush).toBe(true);
    expect(c.canWriteZeroes).toBe(true);
    expect(c.blockSize.minimum).toBeGreaterThanOrEqual(1);
    expect(c.maxPayload).toBeGreaterThanOrEqual(c.blockSize.preferred);
  });

  it('writes, reads back, zeroes, flushes and reports allocation', async () => {
    const c = await client(server.uri);
    const data = randomBytes(256 * 1024);
    await c.write(4 * MiB, data);
    expect((await c.read(4 * MiB, data.length)).equals(data)).toBe(true);
    // an unaligned slice in the middle
    expect((await c.read(4 * MiB + 1000, 3000)).equals(data.subarray(1000, 4000))).toBe(true);
    await c.writeZeroes(4 * MiB + 64 * 1024, 64 * 1024);
    await c.writeZeroes(4 * MiB + 192 * 1024, 64 * 1024, { noHole: true });
    await c.flush();
    const back = await c.read(4 * MiB, data.length);
    expect(back.subarray(0, 65536).equals(data.subarray(0, 65536))).toBe(true);
    expect(back.subarray(65536, 131072).equals(Buffer.alloc(65536))).toBe(true);
    expect(back.subarray(131072, 196608).equals(data.subarray(131072, 196608))).toBe(true);
    expect(back.subarray(196608).equals(Buffer.alloc(65536))).toBe(true);

    const extents = (await c.blockStatusAll(0, c.size)).get(BASE_ALLOCATION)!;
    expect(extents[0].offset).toBe(0);
    expect(extents.reduce((n, e) => n + e.length, 0)).toBe(c.size);
    const at = (offset: number) => extents.find((e) => e.offset <= offset && offset < e.offset + e.length)!;
    expect(at(4 * MiB).flags & NBD_STATE_ZERO).toBe(0);
    expect(at(4 * MiB + 64 * 1024).flags & NBD_STATE_ZERO).toBe(NBD_STATE_ZERO);
    expect(at(40 * MiB).flags & NBD_STATE_ZERO).toBe(NBD_STATE_ZERO);
  });

  it('keeps 64 requests in flight and matches every reply', async () => {
    const c = await client(server.uri);
    const blocks = Array.from({ length: 64 }, (_, i) => ({ offset: 8 * MiB + i * 96 * 1024, data: randomBytes(64 * 1024 + i * 512) }));
    await Promise.all(blocks.map((b) => c.write(b.offset, b.data)));
    const reads = await Promise.all(blocks.map((b) => c.read(b.offset, b.data.length)));
    reads.forEach((r, i) => expect(r.equals(blocks[i].data)).toBe(true));
  });

  it('splits a read larger than the server maximum and refuses ranges beyond the end', async () => {
    const c = await client(server.uri);
    const length = Math.min(c.size, c.maxPayload + 4 * MiB);
    const big = await c.read(0, length);
    expect(big.length).toBe(length);
    await expect(c.read(c.size - 512, 1024)).rejects.toMatchObject({ code: 'EINVAL', local: true });
    expect(c.isOpen).toBe(true);
  });

  it('closes cleanly with DISC and the server keeps serving', async () => {
    const c = await client(server.uri);
    await c.close();
    expect(await c.closed).toBeUndefined();
    const again = await client(server.uri);
    expect((await again.read(0, 512)).length).toBe(512);
  });
});

describe('NbdClient and server-side errors', () => {
  it('surfaces the errors of read-only exports: qemu-nbd 7.2 answers EINVAL "Export is read-only", nbdkit -r EPERM', async () => {
    const file = await createImage(join(dir, 'ro.qcow2'), 'qcow2', 16 * MiB);
    await qemuIo(file, 'qcow2', ['write -P 0x5a 0 1M']);
    const server = await startQemuNbd({ dir, file, format: 'qcow2', readOnly: true });
    const c = await client(server.uri);
    expect(c.readOnly).toBe(true);
    expect((await c.read(0, 4096)).every((b) => b === 0x5a)).toBe(true);
    const error = await c.write(0, Buffer.alloc(4096)).catch((e: unknown) => e);
    expect(error).toBeInstanceOf(NbdCommandError);
    expect(error).toMatchObject({ code: 'EINVAL', errno: 22, command: 'WRITE', offset: 0, length: 4096, serverMessage: 'Export is read-only' });
    expect((error as Error).message).toBe('NBD WRITE at offset 0 length 4096 failed: EINVAL (invalid argument): Export is read-only');
    // qemu does not advertise WRITE_ZEROES on read-only exports, so the client refuses it itself
    expect(c.canWriteZeroes).toBe(false);
    await expect(c.writeZeroes(65536, 65536)).rejects.toMatchObject({ command: 'WRITE_ZEROES', code: 'ENOTSUP', local: true });
    // command errors leave the connection usable
    expect((await c.read(0, 512)).length).toBe(512);

    const kit = await startNbdkit(dir, ['-r', 'memory', '1M']);
    const k = await client(kit.uri);
    expect(k.readOnly).toBe(true);
    await expect(k.write(0, Buffer.alloc(512))).rejects.toMatchObject({ code: 'EPERM', errno: 1, command: 'WRITE', message: expect.stringMatching(/^NBD WRITE at offset 0 length 512 failed: EPERM/) });
  });

  it('maps nbdkit error-filter failures (ENOSPC on write, EIO on read) and nbdkit full (ENOSPC)', async () => {
    const faulty = await startNbdkit(dir, ['memory', '16M', 'error-pwrite=ENOSPC', 'error-pwrite-rate=100%', 'error-pread=EIO', 'error-pread-rate=100%'], ['error']);
    const c = await client(faulty.uri);
    await expect(c.write(4096, Buffer.alloc(4096, 1))).rejects.toMatchObject({ code: 'ENOSPC', errno: 28, command: 'WRITE', offset: 4096 });
    await expect(c.read(8192, 4096)).rejects.toMatchObject({ code: 'EIO', errno: 5, command: 'READ', offset: 8192 });
    const full = await startNbdkit(dir, ['full', '1M']);
    const f = await client(full.uri);
    await expect(f.write(0, Buffer.alloc(512, 1))).rejects.toMatchObject({ code: 'ENOSPC' });
  });

  it('honours a real server block size policy: splits at its maximum, refuses unaligned requests', async () => {
    const server = await startNbdkit(
      dir,
      ['memory', '16M', 'blocksize-minimum=4096', 'blocksize-preferred=65536', 'blocksize-maximum=1M', 'blocksize-error-policy=error'],
      ['blocksize-policy'],
    );
    const c = await client(server.uri);
    expect(c.blockSize).toEqual({ minimum: 4096, preferred: 65536, maximum: 1024 * 1024, advertised: true });
    const data = randomBytes(3 * MiB);
    await c.write(MiB, data);
    expect((await c.read(MiB, 3 * MiB)).equals(data)).toBe(true);
    await expect(c.read(MiB + 512, 4096)).rejects.toMatchObject({ code: 'EINVAL', local: true });
  });

  it('fails the handshake clearly for a bitmap that does not exist, and offers one that does', async () => {
    const file = await createImage(join(dir, 'bm.qcow2'), 'qcow2', 16 * MiB);
    await qemuImg(['bitmap', '--add', '--enable', file, 'b0']);
    const server = await startQemuNbd({ dir, file, format: 'qcow2', readOnly: true, bitmap: 'b0' });
    const error = await client(server.uri, [BASE_ALLOCATION, 'qemu:dirty-bitmap:nope']).catch((e: unknown) => e);
    expect(error).toBeInstanceOf(NbdHandshakeError);
    expect((error as Error).message).toMatch(/does not offer meta context qemu:dirty-bitmap:nope/);
    const ok = await client(server.uri, ['qemu:dirty-bitmap:b0', BASE_ALLOCATION]);
    const map = await ok.blockStatusAll(0, ok.size);
    expect(map.get('qemu:dirty-bitmap:b0')).toEqual([{ offset: 0, length: 16 * MiB, flags: 0 }]);
    expect(map.get(BASE_ALLOCATION)).toEqual([{ offset: 0, length: 16 * MiB, flags: NBD_STATE_HOLE | NBD_STATE_ZERO }]);
  });

  it('reports an unknown export name from qemu-nbd', async () => {
    const file = await createImage(join(dir, 'name.qcow2'), 'qcow2', MiB);
    const server = await startQemuNbd({ dir, file, format: 'qcow2', exportName: 'right' });
    await expect(openNbd(server.uri.replace(/right$/, 'wrong'))).rejects.toMatchObject({ code: 'NBD_REP_ERR_UNKNOWN' });
  });
});
