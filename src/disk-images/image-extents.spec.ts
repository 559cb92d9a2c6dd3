import { randomBytes } from 'node:crypto';
import { compress } from 'zstd-napi';
import { EXTENTS_MEDIA_TYPE, ExtentsCodec, ExtentsDecoder, ExtentsFormatError, extentsType, frameHeader, FrameUnpacker, MAX_PACKED_LENGTH, ZSTD_CODEC } from './image-extents';

/** What a client rebuilds from the frames it was sent, `body` arriving in chunks of `cut` bytes. */
function rebuild(size: number, body: Buffer, cut: number, codec: ExtentsCodec = null): Buffer {
  const disk = Buffer.alloc(size);
  const decoder = new ExtentsDecoder(size, codec);
  const unpacker = new FrameUnpacker();
  // pieces are used after later pushes: each stays as it is for as long as the chunks do
  const pieces = [];
  for (let at = 0; at < body.length; at += cut) pieces.push(...decoder.push(Buffer.from(body.subarray(at, at + cut))));
  for (const piece of pieces) {
    if ('data' in piece) piece.data.copy(disk, piece.offset);
    else unpacker.unpack(piece, disk.subarray(piece.offset, piece.offset + piece.length));
  }
  decoder.finish();
  return disk;
}

const refusedBy = (size: number, content: Buffer, codec: ExtentsCodec = null, cut = 16) => {
  try {
    rebuild(size, content, cut, codec);
  } catch (error) {
    expect(error).toBeInstanceOf(ExtentsFormatError);
    return (error as Error).message;
  }
  throw new Error('accepted');
};

describe('image extents: a disk as its data frames, the holes left out', () => {
  const size = 1024 * 1024 + 512;
  const disk = Buffer.alloc(size);
  randomBytes(70_000).copy(disk, 4096);
  randomBytes(3000).copy(disk, 500_000);
  randomBytes(512).copy(disk, size - 512);
  const frames = [
    [4096, 70_000],
    [500_000, 3000],
    [size - 512, 512],
  ] as const;
  const body = Buffer.concat([...frames.flatMap(([offset, length]) => [frameHeader(offset, length), disk.subarray(offset, offset + length)]), frameHeader(size, 0)]);

  it('rebuilds the disk from frames however the body is cut, header bytes split across chunks included', () => {
    for (const cut of [1, 7, 16, 4096, 65_536, body.length]) expect({ cut, same: rebuild(size, body, cut).equals(disk) }).toEqual({ cut, same: true });
  });

  it('an image of holes alone is one end frame', () => {
    expect(rebuild(4096, frameHeader(4096, 0), 16).equals(Buffer.alloc(4096))).toBe(true);
  });

  it('refuses a body cut off (within a frame, between frames), frames going back, overlapping, or outside the disk, and bytes after the end', () => {
    const refused = (content: Buffer, cut = 16) => refusedBy(size, content, null, cut);
    expect(refused(body.subarray(0, 100))).toMatch(/cut off/);
    expect(refused(body.subarray(0, body.length - 16))).toMatch(/cut off at byte 1049088 of 1049088/);
    expect(refused(Buffer.concat([frameHeader(8192, 10), Buffer.alloc(10), frameHeader(4096, 10)]))).toMatch(/goes back before 8202/);
    expect(refused(Buffer.concat([frameHeader(8192, 10), Buffer.alloc(10), frameHeader(8195, 10)]))).toMatch(/goes back/);
    expect(refused(frameHeader(size - 10, 11))).toMatch(/outside the disk/);
    expect(refused(frameHeader(2 ** 53, 1))).toMatch(/outside the disk/);
    expect(refused(frameHeader(100, 0))).toMatch(/not at the disk's end/);
    expect(refused(Buffer.concat([body, Buffer.alloc(1)]))).toMatch(/after its end frame/);
  });
});

describe('image extents with the zstd codec: stored blocks sent packed, decompressed by the client', () => {
  const block = 64 * 1024;
  const size = 4 * block + 1000;
  const disk = Buffer.alloc(size);
  Buffer.from('a line of a log file, compressible\n'.repeat(2000)).copy(disk, 0, 0, block);
  randomBytes(block).copy(disk, 2 * block);
  Buffer.from('more text '.repeat(7000)).copy(disk, 3 * block, 0, block);
  randomBytes(1000).copy(disk, 4 * block);
  const packedFrame = (offset: number, length: number) => {
    const zstd = compress(disk.subarray(offset, offset + length), { compressionLevel: 3 });
    return [frameHeader(offset, length, 'zstd', zstd.length), zstd];
  };
  const plainFrame = (offset: number, length: number) => [frameHeader(offset, length, 'zstd', 0), disk.subarray(offset, offset + length)];
  const body = Buffer.concat([...packedFrame(0, block), ...plainFrame(2 * block, block), ...packedFrame(3 * block, block), ...plainFrame(4 * block, 1000), frameHeader(size, 0, 'zstd')]);

  it('rebuilds the disk from packed and plain frames however the body is cut, in fewer bytes than the data', () => {
    for (const cut of [1, 23, 24, 4096, 65_536, body.length]) expect({ cut, same: rebuild(size, body, cut, 'zstd').equals(disk) }).toEqual({ cut, same: true });
    expect(body.length).toBeLessThan(2 * block);
  });

  it('names the codec in one media type of a header, and no codec for another type or none', () => {
    expect(extentsType(`${EXTENTS_MEDIA_TYPE}; ${ZSTD_CODEC}`)).toEqual({ extents: true, codec: 'zstd' });
    expect(extentsType(`${EXTENTS_MEDIA_TYPE.toUpperCase()};CODEC = ZSTD`)).toEqual({ extents: true, codec: 'zstd' });
    expect(extentsType(EXTENTS_MEDIA_TYPE)).toEqual({ extents: true, codec: null });
    expect(extentsType(`${EXTENTS_MEDIA_TYPE}; codec=lz4`)).toEqual({ extents: true, codec: null });
    expect(extentsType(`application/octet-stream; ${ZSTD_CODEC}`)).toEqual({ extents: false, codec: null });
    // a client that refuses a type with q=0 does not get it
    expect(extentsType(`${EXTENTS_MEDIA_TYPE}; ${ZSTD_CODEC}; q=0`)).toEqual({ extents: false, codec: null });
    expect(extentsType(`${EXTENTS_MEDIA_TYPE}; q=0.000`)).toEqual({ extents: false, codec: null });
    expect(extentsType(`${EXTENTS_MEDIA_TYPE}; ${ZSTD_CODEC}; q=0.5`)).toEqual({ extents: true, codec: 'zstd' });
  });

  it('refuses packed frames no shorter than what they hold, holding too much, that do not decompress, or decompress to another length', () => {
    const zstd = compress(disk.subarray(0, block), { compressionLevel: 3 });
    const end = frameHeader(size, 0, 'zstd');
    expect(refusedBy(size, Buffer.concat([frameHeader(0, 100, 'zstd', 100), Buffer.alloc(100), end]), 'zstd')).toMatch(/shorter than what it holds/);
    expect(refusedBy(8 * MAX_PACKED_LENGTH, Buffer.concat([frameHeader(0, MAX_PACKED_LENGTH + 1, 'zstd', 10), Buffer.alloc(10)]), 'zstd')).toMatch(/at most 1048576 bytes/);
    expect(refusedBy(size, Buffer.concat([frameHeader(0, block, 'zstd', 100), randomBytes(100), end]), 'zstd')).toMatch(/the packed frame at 0 does not decompress into its 65536 bytes/);
    // the same zstd said to hold more, or less, than it does
    expect(refusedBy(size, Buffer.concat([frameHeader(0, block + 10, 'zstd', zstd.length), zstd, end]), 'zstd')).toMatch(/decompresses to 65536 bytes, not its 65546/);
    expect(refusedBy(size, Buffer.concat([frameHeader(0, block - 10, 'zstd', zstd.length), zstd, end]), 'zstd')).toMatch(/does not decompress into its 65526 bytes/);
    // cut off inside a packed frame
    expect(refusedBy(size, Buffer.concat([frameHeader(0, block, 'zstd', zstd.length), zstd.subarray(0, 50)]), 'zstd')).toMatch(/cut off/);
    // a 16-byte header where 24 are due reads as a frame going past the disk or cut off, never as data
    expect(() => rebuild(size, Buffer.concat([frameHeader(0, 8), Buffer.alloc(8), frameHeader(size, 0)]), 16, 'zstd')).toThrow(ExtentsFormatError);
  });
});
