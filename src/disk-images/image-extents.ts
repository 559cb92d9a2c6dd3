/*
 * A raw disk image as the hub sends it to a client that asks for it (`Accept: application/vnd.sendense.extents`):
 * its data as frames, its holes left out. Each frame is a 16-byte header, the disk offset and the length (two
 * unsigned 64-bit big-endian integers), and that many bytes of the disk; frames come in the order of the disk and
 * never overlap; what no frame covers is zeros. The last frame has the disk's size as its offset and length 0: a body
 * that ends without it was cut off. A disk of mostly empty space crosses the wire as its data alone, where the raw
 * answer sends every zero for the client to find again.
 *
 * A client that also names `codec=zstd` may be answered with that parameter (the hub does so for a chunk point,
 * whose blocks are stored zstd-compressed): each header then has a third integer, `packed`. A frame whose `packed`
 * is 0 carries its `length` bytes as they are; one whose `packed` is not carries that many bytes (fewer than
 * `length`, and `length` at most MAX_PACKED_LENGTH) of zstd that decompress to exactly its `length` bytes. The hub
 * sends a stored block's compressed bytes as they are: decompressing is done once, by the client, and the wire
 * carries the compressed size.
 */

export const EXTENTS_MEDIA_TYPE = 'application/vnd.sendense.extents';
/** The media type's parameter naming zstd-packed frames, as a client asks for them and the hub answers with them. */
export const ZSTD_CODEC = 'codec=zstd';
/** The disk's size, sent with a framed answer (which has no Content-Length). */
export const DISK_SIZE_HEADER = 'X-Sendense-Disk-Size';
export const FRAME_HEADER = 16;
export const PACKED_FRAME_HEADER = 24;
/** A frame longer than this is refused by the decoder: the hub sends pieces of 2 MiB. */
export const MAX_FRAME = 64 * 1024 * 1024;
/** A packed frame decompressing to more than this is refused: the hub packs one 64 KiB block a frame. */
export const MAX_PACKED_LENGTH = 1024 * 1024;

export type ExtentsCodec = 'zstd' | null;

/** The header of a frame of `length` bytes at `offset`; with a codec, the header of packed frames, `packed` 0 for bytes as they are. */
export function frameHeader(offset: number, length: number, codec: ExtentsCodec = null, packed = 0): Buffer {
  const header = Buffer.allocUnsafe(codec ? PACKED_FRAME_HEADER : FRAME_HEADER);
  header.writeBigUInt64BE(BigInt(offset), 0);
  header.writeBigUInt64BE(BigInt(length), 8);
  if (codec) header.writeBigUInt64BE(BigInt(packed), 16);
  return header;
}

/**
 * One media type of a Content-Type or an Accept header: whether it is the extents type (not refused with `q=0`), and
 * whether it names zstd.
 */
export function extentsType(mediaType: string): { extents: boolean; codec: ExtentsCodec } {
  const [type, ...parameters] = mediaType.split(';').map((p) => p.replace(/\s+/g, '').toLowerCase());
  const extents = type === EXTENTS_MEDIA_TYPE && !parameters.some((p) => /^q=0(\.0{0,3})?$/.test(p));
  return { extents, codec: extents && parameters.includes(ZSTD_CODEC) ? 'zstd' : null };
}

export class ExtentsFormatError extends Error {}

/**
 * A piece of a frame's data at its disk offset, or a packed frame whole: its `length` bytes as zstd (FrameUnpacker
 * decompresses them). Either is a view of a received chunk, or of memory the decoder gives no other piece: it stays
 * as it is for as long as the chunks pushed do.
 */
export type ExtentPiece = { offset: number; data: Buffer } | PackedPiece;
export type PackedPiece = { offset: number; length: number; packed: Buffer };

/**
 * Decompresses packed frames, each into memory of exactly its length (a file's staging memory: no copy between). A
 * frame whose zstd does not decompress to exactly its length is an ExtentsFormatError.
 */
export class FrameUnpacker {
  // loaded only for a packed answer: a client command that never gets one does not load the native module
  private readonly dctx = new (require('zstd-napi/binding') as typeof import('zstd-napi/binding')).DCtx();

  unpack(piece: PackedPiece, into: Buffer): void {
    let n: number;
    try {
      n = this.dctx.decompress(into, piece.packed);
    } catch (error) {
      throw new ExtentsFormatError(`the packed frame at ${piece.offset} does not decompress into its ${piece.length} bytes: ${(error as Error).message}`);
    }
    if (n !== piece.length) throw new ExtentsFormatError(`the packed frame at ${piece.offset} decompresses to ${n} bytes, not its ${piece.length}`);
  }
}

/**
 * Turns the body, in whatever chunks it arrives, into pieces of data at their offsets, checking that frames stay in
 * order, inside the disk, and end with the end frame; with a codec, that packed frames are shorter than what they
 * hold and hold at most MAX_PACKED_LENGTH bytes (their decompressing checks the rest).
 */
export class ExtentsDecoder {
  private readonly header: Buffer;
  private headerFill = 0;
  /** The frame being received: where its next byte goes, and how many are still to come. */
  private at = 0;
  private left = 0;
  /** Of a packed frame: its bytes still to come, those come so far (when it spans chunks), and the length it holds. */
  private packedLeft = 0;
  private packedFill = 0;
  private packed = Buffer.alloc(0);
  private packedLength = 0;
  /** Where the previous frame ended: the next starts there or later. */
  private reached = 0;
  ended = false;

  constructor(
    private readonly size: number,
    private readonly codec: ExtentsCodec = null,
  ) {
    this.header = Buffer.alloc(codec ? PACKED_FRAME_HEADER : FRAME_HEADER);
  }

  /** The pieces of data `chunk` carries, in order. */
  push(chunk: Buffer): ExtentPiece[] {
    const pieces: ExtentPiece[] = [];
    for (let i = 0; i < chunk.length; ) {
      if (this.ended) throw new ExtentsFormatError('the image goes on after its end frame');
      if (this.packedLeft > 0) {
        const n = Math.min(this.packedLeft, chunk.length - i);
        this.packedLeft -= n;
        if (this.packedFill === 0 && this.packedLeft === 0) pieces.push(this.packedPiece(chunk.subarray(i, i + n)));
        else {
          // a frame across chunks is gathered into memory of its own, which no later frame reuses
          if (this.packedFill === 0) this.packed = Buffer.allocUnsafe(n + this.packedLeft);
          this.packedFill += chunk.copy(this.packed, this.packedFill, i, i + n);
          if (this.packedLeft === 0) pieces.push(this.packedPiece(this.packed));
        }
        i += n;
        continue;
      }
      if (this.left > 0) {
        const n = Math.min(this.left, chunk.length - i);
        pieces.push({ offset: this.at, data: chunk.subarray(i, i + n) });
        this.at += n;
        this.left -= n;
        i += n;
        if (this.left === 0) this.reached = this.at;
        continue;
      }
      const n = Math.min(this.header.length - this.headerFill, chunk.length - i);
      chunk.copy(this.header, this.headerFill, i, i + n);
      this.headerFill += n;
      i += n;
      if (this.headerFill === this.header.length) this.frame();
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
    const packed = this.codec ? this.header.readBigUInt64BE(16) : 0n;
    if (offset > BigInt(this.size) || length > BigInt(MAX_FRAME) || offset + length > BigInt(this.size)) throw new ExtentsFormatError(`a frame of ${length} bytes at ${offset} lies outside the disk (${this.size} bytes)`);
    if (Number(offset) < this.reached) throw new ExtentsFormatError(`a frame at ${offset} goes back before ${this.reached}`);
    if (packed > 0n && (packed >= length || length > BigInt(MAX_PACKED_LENGTH))) throw new ExtentsFormatError(`a packed frame of ${length} bytes at ${offset} has ${packed} bytes of zstd: a packed frame is shorter than what it holds, which is at most ${MAX_PACKED_LENGTH} bytes`);
    this.at = Number(offset);
    this.reached = this.at;
    if (packed > 0n) {
      this.packedLeft = Number(packed);
      this.packedFill = 0;
      this.packedLength = Number(length);
      return;
    }
    this.left = Number(length);
    if (this.left === 0) {
      if (this.at !== this.size) throw new ExtentsFormatError(`an empty frame at ${offset}, not at the disk's end (${this.size})`);
      this.ended = true;
    }
  }

  private packedPiece(packed: Buffer): PackedPiece {
    const piece = { offset: this.at, length: this.packedLength, packed };
    this.at += this.packedLength;
    this.reached = this.at;
    return piece;
  }
}
