import { randomBytes } from 'node:crypto';
import { ExtentsDecoder, ExtentsFormatError, frameHeader } from './image-extents';

/** What a client rebuilds from the frames it was sent, `body` arriving in chunks of `cut` bytes. */
function rebuild(size: number, body: Buffer, cut: number): Buffer {
  const disk = Buffer.alloc(size);
  const decoder = new ExtentsDecoder(size);
  for (let at = 0; at < body.length; at += cut) for (const piece of decoder.push(body.subarray(at, at + cut))) piece.data.copy(disk, piece.offset);
  decoder.finish();
  return disk;
}

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
    const refused = (content: Buffer, cut = 16) => {
      try {
        rebuild(size, content, cut);
      } catch (error) {
        expect(error).toBeInstanceOf(ExtentsFormatError);
        return (error as Error).message;
      }
      throw new Error('accepted');
    };
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
