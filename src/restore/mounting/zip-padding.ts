import { Transform, TransformCallback } from 'node:stream';

const EOCD_SIGNATURE = Buffer.from([0x50, 0x4b, 0x05, 0x06]);
const EOCD_LENGTH = 22;
/** bsdtar -b 1 pads the output to a multiple of 512 bytes; the end record plus that padding fits easily. */
const HELD_BACK = 4096;

/**
 * bsdtar writes zip through its tape-blocking layer and pads the stream
 * with zeros after the end-of-central-directory record. Lenient readers
 * ignore that; strict ones reject bytes after the record. This passes
 * everything through except the padding: it holds back the last few KiB
 * and, at the end, cuts right after the last end record (and its comment).
 * Without an end record in the tail it changes nothing.
 */
export class ZipPaddingTrimmer extends Transform {
  private tail = Buffer.alloc(0);

  override _transform(chunk: Buffer, _encoding: BufferEncoding, callback: TransformCallback): void {
    const data = this.tail.length ? Buffer.concat([this.tail, chunk]) : chunk;
    if (data.length > HELD_BACK) {
      this.push(data.subarray(0, data.length - HELD_BACK));
      this.tail = Buffer.from(data.subarray(data.length - HELD_BACK));
    } else {
      this.tail = Buffer.from(data);
    }
    callback();
  }

  override _flush(callback: TransformCallback): void {
    this.push(trimAfterEndRecord(this.tail));
    callback();
  }
}

export function trimAfterEndRecord(tail: Buffer): Buffer {
  const at = tail.lastIndexOf(EOCD_SIGNATURE);
  if (at < 0 || at + EOCD_LENGTH > tail.length) return tail;
  const commentLength = tail.readUInt16LE(at + 20);
  const end = at + EOCD_LENGTH + commentLength;
  if (end > tail.length || tail.subarray(end).some((byte) => byte !== 0)) return tail;
  return tail.subarray(0, end);
}
