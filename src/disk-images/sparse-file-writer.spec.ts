import { randomBytes } from 'node:crypto';
import { mkdtempSync, readFileSync, rmSync, statSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { Readable } from 'node:stream';
import { pipeline } from 'node:stream/promises';
import { SPARSE_BLOCK, SparseFileWriter, SparseImageFile, STAGE } from './sparse-file-writer';

const MiB = 1024 * 1024;

describe('sparse file writer', () => {
  const dir = mkdtempSync(join(tmpdir(), 'sendense-sparse-'));
  afterAll(() => rmSync(dir, { recursive: true, force: true }));

  it('writes the same bytes, leaves zero runs (also a trailing one) as holes, and ends at the full size', async () => {
    const image = Buffer.alloc(16 * MiB);
    image.fill(0x5a, 1 * MiB, 1 * MiB + 3);
    image.fill(0xa5, 7 * MiB + 100, 9 * MiB);
    // chunk borders that do not fall on block borders, as an HTTP body delivers them
    const chunks: Buffer[] = [];
    for (let at = 0; at < image.length; at += 777_777) chunks.push(image.subarray(at, Math.min(image.length, at + 777_777)));
    const file = join(dir, 'sparse.img');
    const writer = new SparseFileWriter(file);
    await pipeline(Readable.from(chunks), writer);
    expect(readFileSync(file).equals(image)).toBe(true);
    const st = statSync(file);
    expect(st.size).toBe(16 * MiB);
    expect(writer.position).toBe(16 * MiB);
    // only the blocks holding data were written: the one at 1 MiB, and those of 7 MiB .. 9 MiB
    expect(writer.written).toBe(SPARSE_BLOCK + 2 * MiB);
    expect(st.blocks * 512).toBeLessThan(3 * MiB);
  });

  it('writes past the page cache where the filesystem takes it, and the same bytes through it when told not to; an unaligned end goes through it', async () => {
    // data across stage borders, a zero run inside a stage, and an end 512 bytes past a 4 KiB border
    const size = 3 * STAGE + 8192 + 512;
    const image = Buffer.alloc(size);
    image.fill(0x11, 0, STAGE + 3 * SPARSE_BLOCK);
    image.fill(0x22, 2 * STAGE + SPARSE_BLOCK, size);
    const chunks: Buffer[] = [];
    for (let at = 0; at < size; at += 65_000) chunks.push(image.subarray(at, Math.min(size, at + 65_000)));
    const direct = new SparseFileWriter(join(dir, 'direct.img'));
    const cached = new SparseFileWriter(join(dir, 'cached.img'), { direct: false });
    await pipeline(Readable.from(chunks), direct);
    await pipeline(Readable.from(chunks), cached);
    for (const name of ['direct.img', 'cached.img']) expect(readFileSync(join(dir, name)).equals(image)).toBe(true);
    const data = STAGE + 3 * SPARSE_BLOCK + (size - 2 * STAGE - SPARSE_BLOCK);
    expect([direct.written, cached.written]).toEqual([data, data]);
    // this machine's test directory is on ext4, which takes O_DIRECT: all but the last run (its end unaligned)
    expect(direct.writtenDirect).toBe(STAGE + 3 * SPARSE_BLOCK + (STAGE - SPARSE_BLOCK));
    expect(cached.writtenDirect).toBe(0);
  });

  it('an image written at offsets: the bytes between left as holes, whole stages of them never looked at, the end a hole up to the size', async () => {
    const size = 5 * STAGE + 12_345;
    const image = Buffer.alloc(size);
    const pieces = [
      [100, 5000],
      [STAGE - 10, 20],
      [3 * STAGE + 8192, 70_000],
      [3 * STAGE + 8192 + 70_000, 1],
    ] as const;
    for (const [offset, length] of pieces) randomBytes(length).copy(image, offset);
    const path = join(dir, 'offsets.img');
    const file = await SparseImageFile.create(path);
    try {
      for (const [offset, length] of pieces) await file.write(offset, image.subarray(offset, offset + length));
      await expect(file.write(10, Buffer.alloc(1))).rejects.toThrow(/in order/);
      await file.finish(size);
    } finally {
      await file.close();
    }
    expect(readFileSync(path).equals(image)).toBe(true);
    expect(file.position).toBe(size);
    // the 64 KiB blocks holding data (the first, the two on either side of STAGE), then the last stage's data from
    // its first block to the last byte written (the run at the image's end stops there)
    expect(file.written).toBe(3 * SPARSE_BLOCK + 8192 + 70_001);
    // the space taken: those blocks, the last run rounded up to the filesystem's 4 KiB blocks
    expect(statSync(path).blocks * 512).toBeLessThanOrEqual(3 * SPARSE_BLOCK + Math.ceil((8192 + 70_001) / 4096) * 4096);
  });

  it('bytes made straight into what is written (what a decompressor gives): within a stage, across two, after a hole; out of order refused', async () => {
    const size = 3 * STAGE;
    const image = Buffer.alloc(size);
    const pieces = [
      [0, 65_536],
      [STAGE - 1000, 65_536],
      [2 * STAGE + 4096, 5000],
    ] as const;
    for (const [offset, length] of pieces) randomBytes(length).copy(image, offset);
    const path = join(dir, 'made.img');
    const file = await SparseImageFile.create(path);
    const given: number[] = [];
    try {
      for (const [offset, length] of pieces)
        await file.writeMade(offset, length, (into) => {
          given.push(into.length);
          image.copy(into, 0, offset, offset + length);
        });
      await expect(file.writeMade(10, 1, () => undefined)).rejects.toThrow(/in order/);
      await file.finish(size);
    } finally {
      await file.close();
    }
    expect(given).toEqual(pieces.map(([, length]) => length));
    expect(readFileSync(path).equals(image)).toBe(true);
  });

  it('never overwrites an existing file', async () => {
    const file = join(dir, 'exists.img');
    writeFileSync(file, 'keep');
    await expect(pipeline(Readable.from([Buffer.from('x')]), new SparseFileWriter(file))).rejects.toThrow(/EEXIST/);
    expect(readFileSync(file, 'utf8')).toBe('keep');
  });
});
