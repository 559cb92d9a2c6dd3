/*
 * A raw disk image as the hub sends it to a client that asks for it (`Accept: application/vnd.sendense.extents`):
 * its data as frames, its holes left out. Each frame is a 16-byte header, the disk offset and the length (two
 * unsigned 64-bit big-endian integers), and that many bytes of the disk; frames come in the order of the disk and
 * never overlap; what no frame covers is zeros. The last frame has the disk's size as its offset and length 0: a body
 * that ends without it was cut off. A disk of mostly empty space crosses the wire as its data alone, where the raw
 * answer sends every zero for the client to find again.
 */

export const EXTENTS_MEDIA_TYPE = 'application/vnd.sendense.extents';
/** The disk's size, sent with a framed answer (which has no Content-Length). */
export const DISK_SIZE_HEADER = 'X-Sendense-Disk-Size';
export const FRAME_HEADER = 16;
/** A frame longer than this is refused by the decoder: the hub sends pieces of 2 MiB. */
export const MAX_FRAME = 64 * 1024 * 1024;

export function frameHeader(offset: number, length: number): Buffer {
  const header = Buffer.allocUnsafe(FRAME_HEADER);
  header.writeBigUInt64BE(BigInt(offset), 0);
  header.writeBigUInt64BE(BigInt(length), 8);
  return header;
}

export class ExtentsFormatError extends Error {}

/** A piece of a frame's data at its disk offset (a view of the received chunk: used before the next `push`). */
export interface ExtentPiece {
  offset: number;
  data: Buffer;
}

/**
 * Turns the body, in whatever chunks it arrives, into pieces of data at their offsets, checking that frames stay in
 * order, inside the disk, and end with the end frame.
 */
export class ExtentsDecoder {
  private readonly header = Buffer.alloc(FRAME_HEADER);
  private headerFill = 0;
  /** The frame being received: where its next byte goes, and how many are still to come. */
  private at = 0;
  private left = 0;
  /** Where the previous frame ended: the next starts there or later. */
  private reached = 0;
  ended = false;

  constructor(private readonly size: number) {}

  /** The pieces of data `chunk` carries, in order. */
  push(chunk: Buffer): ExtentPiece[] {
    const pieces: ExtentPiece[] = [];
    for (let i = 0; i < chunk.length; ) {
      if (this.ended) throw new ExtentsFormatError('the image goes on after its end frame');
      if (this.left > 0) {
        const n = Math.min(this.left, chunk.length - i);
        pieces.push({ offset: this.at, data: chunk.subarray(i, i + n) });
        this.at += n;
        this.left -= n;
        i += n;
        if (this.left === 0) this.reached = this.at;
        continue;
      }
      const n = Math.min(FRAME_HEADER - this.headerFill, chunk.length - i);
      chunk.copy(this.header, this.headerFill, i, i + n);
      this.headerFill += n;
      i += n;
      if (this.headerFill === FRAME_HEADER) this.frame();
    }
    return pieces;
  }

  /** Throws unless the end frame came. */
  finish(): void {
    if (!this.ended) throw new ExtentsFormatError(`the image was cut off at byte ${this.reached} of ${this.size}`);
  }

  private frame(): void {
    this.headerFill = 0;
    const offset = this.header.readBigUInt64BE(0);
    const length = this.header.readBigUInt64BE(8);
    if (offset > BigInt(this.size) || length > BigInt(MAX_FRAME) || offset + length > BigInt(this.size)) throw new ExtentsFormatError(`a frame of ${length} bytes at ${offset} lies outside the disk (${this.size} bytes)`);
    if (Number(offset) < this.reached) throw new ExtentsFormatError(`a frame at ${offset} goes back before ${this.reached}`);
    this.at = Number(offset);
    this.left = Number(length);
    if (this.left === 0) {
      if (this.at !== this.size) throw new ExtentsFormatError(`an empty frame at ${offset}, not at the disk's end (${this.size})`);
      this.ended = true;
    }
    this.reached = this.at;
  }
}
