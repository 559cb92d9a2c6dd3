import { randomBytes } from 'node:crypto';
import { promises as fs } from 'node:fs';
import { join } from 'node:path';
import { buildStandardChain, BuiltChain, makeTempDir, MiB, removeTempDir } from '../../../test/fixtures/qcow2/chain-builder';
import { processesMentioning } from '../../../test/support/processes';
import { Writable } from 'node:stream';
import { runProcess } from '../../process/run-process';
import { ChunkStore } from '../../repositories/chunks/chunk-store';
import { Framing, openPointReader, PointDisk, READ_AHEAD, ReadFigures, sendImage } from './point-reader';
import { ExtentsDecoder, FrameUnpacker } from '../image-extents';
import { makeWorkDir } from '../../process/work-area';

/**
 * What sendImage writes, as a socket takes it: writes are accepted at once and queued (as a socket's are, until the
 * kernel takes them), each piece copied only on a later turn of the event loop, just before its write calls back; a
 * buffer read into again before its callback would show as wrong bytes.
 */
async function collect(disk: PointDisk, start: number, end: number, figures?: ReadFigures, framing: Framing = null): Promise<Buffer> {
  const parts: Buffer[] = [];
  const out = new Writable({
    highWaterMark: 256 * MiB,
    write(chunk: Buffer, _encoding, callback) {
      setImmediate(() => {
        parts.push(Buffer.from(chunk));
        callback();
      });
    },
  });
  await sendImage(disk, start, end, out, figures, framing);
  // the end frame is written without waiting for its callback, as an HTTP answer's end flushes it
  await new Promise<void>((resolve) => out.end(resolve));
  return Buffer.concat(parts);
}

/** `data` stored as a point of a plain chunk store at `store`, opened as a download opens it. */
async function chunkPointReader(store: string, data: Buffer) {
  await fs.mkdir(store, { recursive: true });
  const writer = await (await ChunkStore.open(store, { key: null })).writePoint(data.length, null);
  await writer.write(0, data);
  await writer.commit('vm1/rp-1/disk0');
  await writer.close();
  return openPointReader(join(store, 'points', 'vm1', 'rp-1', 'disk0.idx'), await makeWorkDir(join(store, '..', 'area')));
}

/** A real qemu-nbd of a real 4-point qcow2 chain, read with our NBD client. */
describe('reading a point as a raw disk through qemu-nbd and block status', () => {
  let dir: string;
  let chain: BuiltChain;
  beforeAll(async () => {
    dir = await makeTempDir('point-reader');
    chain = await buildStandardChain(dir);
  });
  afterAll(async () => removeTempDir(dir));

  it('reads each point exactly as its raw reference, reading only the allocated data; holes and zeroed ranges come as zeroes unread', async () => {
    for (const [i, file] of chain.files.entries()) {
      const work = await makeWorkDir(join(dir, 'area'));
      const reader = await openPointReader(file, work);
      try {
        expect(reader.size).toBe(64 * MiB);
        const figures: ReadFigures = { read: 0, zero: 0, sent: 0 };
        const data = await collect(reader.disk, 0, reader.size, figures);
        expect({ i, same: data.equals(await fs.readFile(chain.references[i])) }).toEqual({ i, same: true });
        expect(figures.read + figures.zero).toBe(64 * MiB);
        expect(figures.sent).toBe(64 * MiB);
        // the standard chain holds ~12 MiB of data in a 64 MiB disk: most of it must not be read
        expect(figures.read).toBeLessThan(20 * MiB);
        expect(figures.zero).toBeGreaterThan(40 * MiB);
      } finally {
        await reader.close();
      }
      expect(processesMentioning(work)).toEqual([]);
    }
  });

  it('reads a disk of data through its few buffers again and again, every byte right for a receiver that takes its time', async () => {
    const raw = join(dir, 'random.raw');
    const data = randomBytes(48 * MiB);
    await fs.writeFile(raw, data);
    const image = join(dir, 'random.qcow2');
    await runProcess('qemu-img', ['convert', '-q', '-f', 'raw', '-O', 'qcow2', raw, image]);
    const work = await makeWorkDir(join(dir, 'area'));
    const reader = await openPointReader(image, work);
    try {
      const reads = jest.spyOn(reader.disk, 'read');
      expect((await collect(reader.disk, 0, reader.size)).equals(data)).toBe(true);
      expect(reads.mock.calls.length).toBeGreaterThan(2 * READ_AHEAD);
      expect(new Set(reads.mock.calls.map(([, , into]) => into?.buffer)).size).toBe(READ_AHEAD);
    } finally {
      await reader.close();
    }
  });

  it('reads a chunk point in this process, without a server: the same bytes, its zero blocks unread', async () => {
    const store = join(dir, 'repo', 'chunks');
    const data = Buffer.alloc(20 * MiB);
    randomBytes(6 * MiB).copy(data, 0);
    Buffer.from('a log line of a chunk point\n'.repeat(200_000)).copy(data, 12 * MiB);
    const reader = await chunkPointReader(store, data);
    try {
      expect(processesMentioning(store)).toEqual([]);
      const figures: ReadFigures = { read: 0, zero: 0, sent: 0 };
      expect((await collect(reader.disk, 0, reader.size, figures)).equals(data)).toBe(true);
      // 6 MiB of random data and the log's blocks; the zeros between are not read
      expect(figures.read).toBeLessThan(12 * MiB);
      expect(figures).toMatchObject({ read: data.length - figures.zero, sent: data.length });
      expect((await collect(reader.disk, 6 * MiB - 5, 12 * MiB + 70_000)).equals(data.subarray(6 * MiB - 5, 12 * MiB + 70_000))).toBe(true);
    } finally {
      await reader.close();
    }
  });

  it('sends a chunk point packed to a client that names zstd: its compressed blocks as stored, the rest and the short last block plain, the holes left out; the same disk rebuilt', async () => {
    const store = join(dir, 'packed', 'chunks');
    // more pieces than the reader's buffers, so that each is read into again after its frames were taken
    const data = Buffer.alloc((READ_AHEAD + 4) * 2 * MiB + 1000);
    randomBytes(5 * MiB).copy(data, 0);
    Buffer.from('a log line of a packed download\n'.repeat(400_000)).copy(data, 9 * MiB);
    randomBytes(1000).copy(data, data.length - 1000);
    const reader = await chunkPointReader(store, data);
    try {
      const figures: ReadFigures = { read: 0, zero: 0, sent: 0 };
      const body = await collect(reader.disk, 0, reader.size, figures, { codec: 'zstd' });
      const plain = await collect(reader.disk, 0, reader.size, undefined, { codec: null });
      const rebuilt = Buffer.alloc(data.length);
      const decoder = new ExtentsDecoder(data.length, 'zstd');
      const unpacker = new FrameUnpacker();
      let packed = 0;
      for (const piece of decoder.push(body)) {
        if ('data' in piece) piece.data.copy(rebuilt, piece.offset);
        else {
          packed++;
          unpacker.unpack(piece, rebuilt.subarray(piece.offset, piece.offset + piece.length));
        }
      }
      decoder.finish();
      expect(rebuilt.equals(data)).toBe(true);
      // the log's 12.2 MiB went as zstd, the random data as it is: the body is a fraction of the plain frames'
      expect(packed).toBeGreaterThan(150);
      expect(body.length).toBeLessThan(plain.length * 0.6);
      expect(figures).toMatchObject({ read: data.length - figures.zero, sent: data.length });
      // a qcow2 point has no packed reads: its client gets plain frames whatever it names
      expect((await openPointReader(chain.files[0], await makeWorkDir(join(dir, 'area'))).then(async (r) => [typeof r.disk.readPacked, await r.close()]))[0]).toBe('undefined');
    } finally {
      await reader.close();
    }
  });

  it('reads any range, also across data/hole borders and ending inside a cluster', async () => {
    const reference = await fs.readFile(chain.references[3]);
    const work = await makeWorkDir(join(dir, 'area'));
    const reader = await openPointReader(chain.files[3], work);
    try {
      for (const [start, end] of [[0, 1], [MiB + 50, MiB + 2000], [8 * MiB - 5000, 8 * MiB + 70_000], [40 * MiB, 41 * MiB + 3], [63 * MiB + 100, 64 * MiB]]) {
        const data = await collect(reader.disk, start, end);
        expect({ start, end, same: data.equals(reference.subarray(start, end)) }).toEqual({ start, end, same: true });
      }
      // nothing beyond the disk: no bytes made up past its end
      await expect(reader.disk.read(64 * MiB - 10, 20)).rejects.toThrow(`[${64 * MiB - 10}, ${64 * MiB + 10}) is not within the disk's ${64 * MiB} bytes`);
      await expect(reader.disk.allocation(64 * MiB, 1)).rejects.toThrow(/is not within the disk's/);
    } finally {
      await reader.close();
    }
  });

  it('rejects as a closed receiver when the consumer gives up mid-way (the HTTP client went away), and qemu-nbd stops', async () => {
    const work = await makeWorkDir(join(dir, 'area'));
    const reader = await openPointReader(chain.files[0], work);
    expect(processesMentioning(work).some((p) => p.cmdline.includes('qemu-nbd'))).toBe(true);
    const figures: ReadFigures = { read: 0, zero: 0, sent: 0 };
    const out = new Writable({
      write(chunk: Buffer, _encoding, callback) {
        callback();
        out.destroy();
      },
    });
    await expect(sendImage(reader.disk, 0, reader.size, out, figures)).rejects.toMatchObject({ code: 'ERR_STREAM_PREMATURE_CLOSE' });
    expect(figures.sent).toBeLessThan(64 * MiB);
    await reader.close();
    expect(processesMentioning(work)).toEqual([]);
  });

  it('fails clearly for a file qemu-nbd cannot open, leaving nothing running', async () => {
    const work = await makeWorkDir(join(dir, 'area'));
    await expect(openPointReader(join(dir, 'missing.qcow2'), work)).rejects.toThrow(/qemu-nbd exited with code 1: .*missing.qcow2/);
    expect(processesMentioning(work)).toEqual([]);
  });
});
