import { join } from 'node:path';
import { allocatedDataBytes, createImage, imageMap, imagesEqual, MiB, qemuImg, qemuIo } from '../../test/fixtures/nbd/images';
import { isRunning, nbdkitLoggedCounts, NbdServer, removeDir, serverPids, startNbdkit, startQemuNbd, stopAllServers, tempDir } from '../../test/fixtures/nbd/servers';
import { BASE_ALLOCATION, NBD_STATE_DIRTY } from '../nbd-protocol/constants';
import { NbdCommandError } from '../nbd-protocol/errors';
import { NbdClient } from '../nbd-protocol/nbd-client';
import { openNbd } from '../nbd-protocol/open-nbd';
import { BlockDigests, DIGEST_BLOCK_SIZE, DIGEST_LENGTH, digestOf } from '../wire/block-digests';
import { copyDisk, CopyProgress, DEFAULT_READ_SIZE, DEFAULT_REQUEST_SIZE } from './copy-disk';

/** copyDisk between real qemu-nbd / nbdkit exports, checked with qemu-img compare and qemu-img map. */

jest.setTimeout(120_000);

const K = 1024;
const SIZE = 64 * MiB;
let dir: string;
const clients: NbdClient[] = [];
const pids: number[] = [];

async function open(server: NbdServer, metaContexts: string[] = []): Promise<NbdClient> {
  const c = await openNbd(server.uri, { metaContexts });
  clients.push(c);
  return c;
}

async function closeAll(): Promise<void> {
  await Promise.all(clients.splice(0).map((c) => c.close().catch(() => c.destroy())));
}

async function stop(...servers: NbdServer[]): Promise<void> {
  await closeAll();
  for (const s of servers) await s.stop();
}

beforeAll(() => {
  dir = tempDir('sendense-copy-disk-int-');
});

afterEach(async () => {
  await closeAll();
  pids.push(...serverPids());
  await stopAllServers();
});

afterAll(() => {
  for (const pid of pids) expect(isRunning(pid)).toBe(false);
  removeDir(dir);
});

/** A 64 MiB qcow2 with data scattered between holes (aligned, unaligned, at the very end) and an explicit zero range. */
async function sourceWithHoles(file: string): Promise<string> {
  await createImage(file, 'qcow2', SIZE);
  await qemuIo(file, 'qcow2', [
    'write -P 0x11 0 64k',
    'write -P 0x22 1M 192k',
    'write -P 0x33 3000000 5000',
    'write -P 0x44 20M 3M',
    'write -z 24M 1M',
    'write -P 0x55 33M 4M',
    'write -P 0x00 45M 64k',
    'write -P 0x66 63M 1M',
  ]);
  return file;
}

describe('copyDisk full', () => {
  it('copies only allocated data into a fresh qcow2, which then equals the source', async () => {
    const src = await sourceWithHoles(join(dir, 'full-src.qcow2'));
    const dst = await createImage(join(dir, 'full-dst.qcow2'), 'qcow2', SIZE);
    const expectedData = await allocatedDataBytes(src, 'qcow2');
    const source = await startQemuNbd({ dir, file: src, format: 'qcow2', readOnly: true, unix: true });
    const target = await startQemuNbd({ dir, file: dst, format: 'qcow2' });
    const progress: CopyProgress[] = [];
    const summary = await copyDisk({
      source: await open(source, [BASE_ALLOCATION]),
      target: await open(target),
      mode: 'full',
      requests: 8,
      requestSize: 256 * K,
      onProgress: (p) => progress.push(p),
    });
    expect(summary.bytesWritten).toBe(expectedData);
    expect(summary.bytesRead).toBe(expectedData);
    expect(summary.bytesPlanned).toBe(expectedData);
    expect(summary.bytesZeroed).toBe(0);
    expect(summary.bytesWritten).toBeLessThan(SIZE / 4);
    expect(summary.extents).toBeGreaterThanOrEqual(6);
    expect(progress[0]).toMatchObject({ bytesDone: 0, bytesPlanned: expectedData });
    expect(progress[progress.length - 1]).toMatchObject({ bytesDone: expectedData, bytesPlanned: expectedData });
    await stop(source, target);
    expect(await imagesEqual(src, 'qcow2', dst, 'qcow2')).toEqual({ equal: true, output: expect.stringContaining('Images are identical') });
    // the holes stayed holes: the target allocates exactly what was written
    expect(await allocatedDataBytes(dst, 'qcow2')).toBe(expectedData);
  });

  it('copies from nbdkit sparse-random into qcow2, and into raw over a Unix socket', async () => {
    const kit = await startNbdkit(dir, ['sparse-random', '32M', 'seed=42', 'percent=25', 'runlength=307200']);
    for (const format of ['qcow2', 'raw'] as const) {
      const dst = await createImage(join(dir, `kit-dst.${format}`), format, 32 * MiB);
      const target = await startQemuNbd({ dir, file: dst, format, unix: format === 'raw' });
      const summary = await copyDisk({ source: await open(kit, [BASE_ALLOCATION]), target: await open(target), mode: 'full' });
      expect(summary.bytesWritten).toBeGreaterThan(4 * MiB);
      expect(summary.bytesWritten).toBeLessThan(16 * MiB);
      await stop(target);
      const { equal } = await imagesEqual(kit.uri, 'raw', dst, format);
      expect(equal).toBe(true);
    }
  });

  it('zeroes zero extents instead of skipping them when the target is not fresh', async () => {
    const src = await sourceWithHoles(join(dir, 'nz-src.qcow2'));
    const dst = await createImage(join(dir, 'nz-dst.qcow2'), 'qcow2', SIZE);
    await qemuIo(dst, 'qcow2', ['write -P 0x77 0 64M']);
    const source = await startQemuNbd({ dir, file: src, format: 'qcow2', readOnly: true });
    const target = await startQemuNbd({ dir, file: dst, format: 'qcow2' });
    const summary = await copyDisk({ source: await open(source, [BASE_ALLOCATION]), target: await open(target), mode: 'full', targetIsZero: false });
    expect(summary.bytesWritten + summary.bytesZeroed).toBe(SIZE);
    await stop(source, target);
    expect((await imagesEqual(src, 'qcow2', dst, 'qcow2')).equal).toBe(true);
  });
});

describe('copyDisk onto what the target holds (known)', () => {
  /** Every block's digest of an image, read through its own export: what the hub tells the agent its base holds. */
  async function digestsOf(file: string): Promise<BlockDigests> {
    const server = await startQemuNbd({ dir, file, format: 'qcow2', readOnly: true, unix: true });
    const client = await openNbd(server.uri);
    const digests = Buffer.alloc((SIZE / DIGEST_BLOCK_SIZE) * DIGEST_LENGTH);
    for (let at = 0; at < SIZE; at += DIGEST_BLOCK_SIZE) digestOf(await client.read(at, DIGEST_BLOCK_SIZE)).copy(digests, (at / DIGEST_BLOCK_SIZE) * DIGEST_LENGTH);
    await client.close();
    await server.stop();
    return new BlockDigests(SIZE, [{ first: 0, count: SIZE / DIGEST_BLOCK_SIZE, zero: false, digests }]);
  }

  it('sends only the blocks that differ from the target, zeroes only where the target holds data, and the target then equals the source', async () => {
    const base = await sourceWithHoles(join(dir, 'known-base.qcow2'));
    const src = join(dir, 'known-src.qcow2');
    const dst = join(dir, 'known-dst.qcow2');
    await qemuImg(['convert', '-O', 'qcow2', base, src]);
    await qemuImg(['convert', '-O', 'qcow2', base, dst]);
    // one block rewritten, 100 bytes inside another, 1 MiB of the base's data zeroed, 128 KiB new where the base has a hole
    await qemuIo(src, 'qcow2', ['write -P 0x99 1M 64k', 'write -P 0x12 3000000 100', 'write -z 20M 1M', 'write -P 0x88 50M 128k']);
    const known = await digestsOf(dst);
    const source = await startQemuNbd({ dir, file: src, format: 'qcow2', readOnly: true, unix: true });
    const target = await startQemuNbd({ dir, file: dst, format: 'qcow2' });
    const progress: CopyProgress[] = [];
    const summary = await copyDisk({ source: await open(source, [BASE_ALLOCATION]), target: await open(target), mode: 'full', digests: true, known, onProgress: (p) => progress.push(p) });
    expect({ written: summary.bytesWritten, zeroed: summary.bytesZeroed, known: summary.bytesKnown }).toEqual({ written: 4 * 64 * K, zeroed: MiB, known: SIZE - 4 * 64 * K - MiB });
    expect(progress.at(-1)).toMatchObject({ bytesDone: SIZE, bytesPlanned: SIZE });
    await stop(source, target);
    expect((await imagesEqual(src, 'qcow2', dst, 'qcow2')).equal).toBe(true);
    // the digests are the source's, skipped blocks included: a verify of the new point compares every block
    const expected = await digestsOf(src);
    for (let block = 0; block < SIZE / DIGEST_BLOCK_SIZE; block++) expect([block, summary.digests!.digestAt(block)?.toString('hex')]).toEqual([block, expected.digestAt(block)!.toString('hex')]);
  });

  it('refuses known digests for another size, or without digests, or for an incremental', async () => {
    const src = await sourceWithHoles(join(dir, 'known-bad.qcow2'));
    const source = await startQemuNbd({ dir, file: src, format: 'qcow2', readOnly: true, unix: true });
    const dst = await createImage(join(dir, 'known-bad-dst.qcow2'), 'qcow2', SIZE);
    const target = await startQemuNbd({ dir, file: dst, format: 'qcow2' });
    const other = new BlockDigests(SIZE / 2, []);
    const [s, t] = [await open(source, [BASE_ALLOCATION]), await open(target)];
    await expect(copyDisk({ source: s, target: t, mode: 'full', digests: true, known: other })).rejects.toThrow(/describe a 33554432-byte disk/);
    await expect(copyDisk({ source: s, target: t, mode: 'full', known: new BlockDigests(SIZE, []) })).rejects.toThrow(/full copy with digests/);
    await expect(copyDisk({ source: s, target: t, mode: 'incremental', bitmap: 'b', digests: true, known: new BlockDigests(SIZE, []) })).rejects.toThrow(/full copy with digests/);
  });
});

describe('copyDisk throttle', () => {
  it('reads no faster than maxBytesPerSecond, and the copy is still exact', async () => {
    const src = await sourceWithHoles(join(dir, 'throttle-src.qcow2'));
    const data = await allocatedDataBytes(src, 'qcow2');
    const dst = await createImage(join(dir, 'throttle-dst.qcow2'), 'qcow2', SIZE);
    const [source, target] = await Promise.all([startQemuNbd({ dir, file: src, format: 'qcow2', readOnly: true }), startQemuNbd({ dir, file: dst, format: 'qcow2' })]);
    const rate = 4 * MiB;
    const seen: number[] = [];
    const summary = await copyDisk({ source: await open(source, [BASE_ALLOCATION]), target: await open(target), mode: 'full', requestSize: 256 * K, maxBytesPerSecond: rate, progressIntervalMs: 100, onProgress: (p) => seen.push(p.bytesDone) });
    // the last request starts once all before it fit the rate: its start, not its end, is what the schedule bounds
    expect(summary.durationMs).toBeGreaterThanOrEqual(((data - 256 * K) / rate) * 1000);
    expect(new Set(seen).size).toBeGreaterThan(5);
    await stop(source, target);
    expect((await imagesEqual(src, 'qcow2', dst, 'qcow2')).equal).toBe(true);
    await expect(copyDisk({ source: await open(await startQemuNbd({ dir, file: src, format: 'qcow2', readOnly: true })), target: await open(await startQemuNbd({ dir, file: dst, format: 'qcow2' })), mode: 'full', maxBytesPerSecond: 0 })).rejects.toThrow(/maxBytesPerSecond must be a positive number/);
  });
});

describe('copyDisk request sizes', () => {
  it('writes requests of requestSize, reading them in pieces of DEFAULT_READ_SIZE or, with readSize, of that size', async () => {
    const sum = (xs: number[]) => xs.reduce((a, b) => a + b, 0);
    for (const readSize of [undefined, DEFAULT_REQUEST_SIZE]) {
      const tag = readSize ?? 'default';
      const sourceLog = join(dir, `sizes-src-${tag}.log`);
      const targetLog = join(dir, `sizes-dst-${tag}.log`);
      // data in runs of ~8 MiB, so most requests are whole
      const kit = await startNbdkit(dir, ['sparse-random', '32M', 'seed=7', 'percent=50', 'runlength=8388608', `logfile=${sourceLog}`], ['log']);
      const sink = await startNbdkit(dir, ['memory', '32M', `logfile=${targetLog}`], ['log']);
      const summary = await copyDisk({ source: await open(kit, [BASE_ALLOCATION]), target: await open(sink), mode: 'full', digests: true, readSize });
      const reads = nbdkitLoggedCounts(sourceLog, 'Read');
      const writes = nbdkitLoggedCounts(targetLog, 'Write');
      expect(Math.max(...writes)).toBe(DEFAULT_REQUEST_SIZE);
      expect(Math.max(...reads)).toBe(readSize ?? DEFAULT_READ_SIZE);
      expect(sum(reads)).toBe(summary.bytesRead);
      expect(sum(writes)).toBe(summary.bytesWritten);
      expect(summary.bytesWritten).toBeGreaterThan(8 * MiB);
      expect((await imagesEqual(kit.uri, 'raw', sink.uri, 'raw')).equal).toBe(true);
      await stop(kit, sink);
    }
  });

  it('refuses a read size below 4 KiB', async () => {
    const kit = await startNbdkit(dir, ['memory', '1M']);
    await expect(copyDisk({ source: await open(kit), target: await open(kit), mode: 'full', readSize: 512 })).rejects.toThrow(/readSize must be an integer of at least 4096 bytes, not 512/);
  });
});

describe('copyDisk incremental', () => {
  it('writes exactly the dirty clusters into an overlay, zeroing without trim, and the overlay equals the new source', async () => {
    const src = await createImage(join(dir, 'inc-src.qcow2'), 'qcow2', SIZE);
    await qemuIo(src, 'qcow2', ['write -P 0x10 0 8M', 'write -P 0x20 16M 8M', 'write -P 0x30 40M 2M']);
    await qemuImg(['bitmap', '--add', '--enable', src, 'b1']);

    // full backup T0
    const t0 = await createImage(join(dir, 'inc-t0.qcow2'), 'qcow2', SIZE);
    let source = await startQemuNbd({ dir, file: src, format: 'qcow2', readOnly: true });
    let target = await startQemuNbd({ dir, file: t0, format: 'qcow2' });
    await copyDisk({ source: await open(source, [BASE_ALLOCATION]), target: await open(target), mode: 'full' });
    await stop(source, target);

    // the guest changes things (the enabled bitmap records them)
    await qemuIo(src, 'qcow2', [
      'write -P 0xa1 2M 64k', // aligned, over data
      'write -P 0xa2 3145828 1000', // unaligned, inside one cluster
      'write -P 0xa3 8384512 8192', // straddles a cluster boundary at the end of the first data run
      'write -z 1M 128k', // zeroes over previously non-zero data
      'write -P 0xa4 30M 3M', // a run over a hole
      'write -P 0x00 50M 64k', // zero bytes written as data over a hole
      'write -z 41M 64k', // zeroes over data in the third run
      'write -P 0xa5 67108352 512', // the last sector of the disk
    ]);

    // incremental into an overlay of T0
    const t1 = join(dir, 'inc-t1.qcow2');
    await createImage(t1, 'qcow2', SIZE, t0);
    source = await startQemuNbd({ dir, file: src, format: 'qcow2', readOnly: true, bitmap: 'b1', unix: true });
    target = await startQemuNbd({ dir, file: t1, format: 'qcow2' });

    // the dirty bytes as the bitmap reports them, from an independent connection
    const probe = await open(source, ['qemu:dirty-bitmap:b1']);
    const bitmap = (await probe.blockStatusAll(0, probe.size)).get('qemu:dirty-bitmap:b1')!;
    const dirtyBytes = bitmap.filter((x) => x.flags & NBD_STATE_DIRTY).reduce((n, x) => n + x.length, 0);
    expect(dirtyBytes % (64 * K)).toBe(0);
    expect(dirtyBytes).toBeLessThan(8 * MiB);

    const summary = await copyDisk({
      source: await open(source, ['qemu:dirty-bitmap:b1', BASE_ALLOCATION]),
      target: await open(target),
      mode: 'incremental',
      bitmap: 'b1',
      requests: 4,
    });
    expect(summary.dirtyBytes).toBe(dirtyBytes);
    expect(summary.bytesWritten + summary.bytesZeroed).toBe(dirtyBytes);
    expect(summary.bytesZeroed).toBeGreaterThanOrEqual(128 * K + 64 * K);
    expect(summary.bytesRead).toBe(summary.bytesWritten);
    await stop(source, target);

    expect((await imagesEqual(src, 'qcow2', t1, 'qcow2')).equal).toBe(true);
    // the overlay itself holds exactly the dirty clusters (data or zero clusters), nothing more
    const own = (await imageMap(t1, 'qcow2')).filter((m) => m.depth === 0 && (m.data || m.zero));
    expect(own.reduce((n, m) => n + m.length, 0)).toBe(dirtyBytes);
  });

  it('refuses an incremental copy without the bitmap context, and names a missing bitmap', async () => {
    const src = await createImage(join(dir, 'nobm.qcow2'), 'qcow2', 4 * MiB);
    const dst = await createImage(join(dir, 'nobm-dst.qcow2'), 'qcow2', 4 * MiB);
    const source = await startQemuNbd({ dir, file: src, format: 'qcow2', readOnly: true });
    const target = await startQemuNbd({ dir, file: dst, format: 'qcow2' });
    await expect(copyDisk({ source: await open(source, [BASE_ALLOCATION]), target: await open(target), mode: 'incremental', bitmap: 'b9' })).rejects.toThrow(
      /no meta context qemu:dirty-bitmap:b9/,
    );
    await expect(open(source, ['qemu:dirty-bitmap:b9', BASE_ALLOCATION])).rejects.toThrow(/bitmap "b9" does not exist or is not exported/);
  });
});

describe('copyDisk failures', () => {
  it('stops promptly on abort even while requests hang, and reports an AbortError', async () => {
    const src = await createImage(join(dir, 'abort-src.qcow2'), 'qcow2', 32 * MiB);
    await qemuIo(src, 'qcow2', ['write -P 0x42 0 32M']);
    const source = await startQemuNbd({ dir, file: src, format: 'qcow2', readOnly: true });
    const slow = await startNbdkit(dir, ['memory', '32M', 'delay-write=2'], ['delay']);
    const controller = new AbortController();
    const copying = copyDisk({ source: await open(source, [BASE_ALLOCATION]), target: await open(slow), mode: 'full', signal: controller.signal });
    setTimeout(() => controller.abort(), 150);
    const began = Date.now();
    const error = await copying.catch((e: unknown) => e);
    expect(error).toMatchObject({ name: 'AbortError', code: 'ABORT_ERR' });
    expect(Date.now() - began).toBeLessThan(1000);
    await expect(copyDisk({ source: clients[0], target: clients[1], mode: 'full', signal: AbortSignal.abort() })).rejects.toMatchObject({ name: 'AbortError' });
    for (const c of clients) c.destroy();
  });

  it('fails promptly when the source server dies mid-copy, and when the progress callback throws', async () => {
    const dying = await startNbdkit(dir, ['pattern', '64M', 'delay-read=1'], ['delay']);
    const sink = await startNbdkit(dir, ['memory', '64M']);
    const copying = copyDisk({ source: await open(dying), target: await open(sink), mode: 'full', requests: 4 });
    await new Promise((r) => setTimeout(r, 200));
    const began = Date.now();
    await dying.stop();
    // nbdkit answers what is in flight with ESHUTDOWN (the client then disconnects); anything later finds the connection gone
    await expect(copying).rejects.toThrow(/ESHUTDOWN|NBD server closed the connection|NBD connection failed|connection is closing/);
    expect(Date.now() - began).toBeLessThan(4000);

    const pattern = await startNbdkit(dir, ['pattern', '8M']);
    await expect(
      copyDisk({
        source: await open(pattern),
        target: await open(sink),
        mode: 'full',
        requests: 1,
        requestSize: 4096,
        progressIntervalMs: 1,
        onProgress: () => {
          throw new Error('observer broke');
        },
      }),
    ).rejects.toThrow('observer broke');
  });

  it('surfaces target errors (ENOSPC) and refuses unusable targets', async () => {
    const src = await createImage(join(dir, 'err-src.qcow2'), 'qcow2', 4 * MiB);
    await qemuIo(src, 'qcow2', ['write -P 0x42 0 1M']);
    const source = await startQemuNbd({ dir, file: src, format: 'qcow2', readOnly: true });
    const full = await startNbdkit(dir, ['full', '4M']);
    const error = await copyDisk({ source: await open(source, [BASE_ALLOCATION]), target: await open(full), mode: 'full' }).catch((e: unknown) => e);
    expect(error).toBeInstanceOf(NbdCommandError);
    expect(error).toMatchObject({ code: 'ENOSPC', command: 'WRITE' });

    const small = await startNbdkit(dir, ['memory', '1M']);
    await expect(copyDisk({ source: await open(source, [BASE_ALLOCATION]), target: await open(small), mode: 'full' })).rejects.toThrow(/smaller/);
    const ro = await startNbdkit(dir, ['-r', 'memory', '4M']);
    await expect(copyDisk({ source: await open(source, [BASE_ALLOCATION]), target: await open(ro), mode: 'full' })).rejects.toThrow(/read-only/);
  });
});
