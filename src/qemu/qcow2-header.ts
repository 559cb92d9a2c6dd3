import { closeSync, fstatSync, promises as fs, openSync, readSync } from 'node:fs';

const QCOW2_MAGIC = 0x514649fb;
const HEADER_BYTES = 20;
const MAX_BACKING_NAME = 1023;

/**
 * The backing file name exactly as stored in the image header, or null for a standalone image.
 * Reading the header directly is much cheaper than a qemu-img process per file, which matters
 * when scanning a directory of hundreds of restore points for dependents. It also takes no
 * image lock, so it works while a qemu-nbd export has the file open.
 */
export async function readBackingFileName(file: string): Promise<string | null> {
  const handle = await fs.open(file, 'r');
  try {
    const header = Buffer.alloc(HEADER_BYTES);
    const { bytesRead } = await handle.read(header, 0, HEADER_BYTES, 0);
    if (bytesRead < HEADER_BYTES || header.readUInt32BE(0) !== QCOW2_MAGIC) throw new Error(`${file} is not a qcow2 image`);
    const offset = header.readBigUInt64BE(8);
    const length = header.readUInt32BE(16);
    if (offset === 0n || length === 0) return null;
    if (length > MAX_BACKING_NAME) throw new Error(`${file}: backing file name length ${length} is implausible`);
    const name = Buffer.alloc(length);
    const read = await handle.read(name, 0, length, Number(offset));
    if (read.bytesRead !== length) throw new Error(`${file}: backing file name lies beyond the end of the file`);
    return name.toString('utf8');
  } finally {
    await handle.close();
  }
}

/** What a qcow2 header says of the image and its backing file. */
export interface Qcow2Header {
  virtualSize: number;
  /** As stored: a relative name is relative to the image's own directory. */
  backingFilename: string | null;
  backingFormat: string | null;
  /** qcow2 sets this flag when it found inconsistent metadata while the image was in use. */
  corrupt: boolean;
}

/** The header as readQcow2Header answers it: with the file's length, read from the same open file. */
export interface Qcow2FileHeader extends Qcow2Header {
  fileBytes: number;
}

const HEADER_V3_BYTES = 104;
const INCOMPATIBLE_DIRTY = 1n;
const INCOMPATIBLE_CORRUPT = 2n;
const EXTENSION_END = 0;
const EXTENSION_BACKING_FORMAT = 0xe2792aca;
const EXTENSION_BITMAPS = 0x23852875;
/** The autoclear bit that says the bitmaps extension is consistent: a program without bitmap support clears it. */
const AUTOCLEAR_BITMAPS = 1n;
const BITMAP_IN_USE = 1;
const BITMAP_AUTO = 2;
const BITMAP_EXTRA_DATA_COMPATIBLE = 4;
const BITMAP_ENTRY_BYTES = 24;
/** qemu's own bounds on a bitmap directory (block/qcow2.h): anything beyond them it refuses to open. */
const MAX_BITMAPS = 65535;
const MAX_BITMAP_DIRECTORY_BYTES = 64 * 1024 * 1024;
const MAX_BITMAP_NAME = 1023;

/** A qcow2 v3 header's fields, as parseQcow2Header reads them from an open file. */
export interface Qcow2HeaderFields extends Qcow2Header {
  clusterBits: number;
  cryptMethod: number;
  l1Size: number;
  l1Offset: number;
  incompatible: bigint;
  autoclear: bigint;
  /** The bitmaps header extension, where the image has one. */
  bitmapDirectory: { count: number; bytes: number; offset: number } | null;
}

/** A persistent dirty bitmap's directory entry, with its flags as qemu-img info names them. */
export interface Qcow2Bitmap {
  name: string;
  granularity: number;
  /** `in-use` first, then `auto`, the order qemu-img info lists them in. */
  flags: ('in-use' | 'auto')[];
}

/**
 * The header of a qcow2 v3 image as qemu reads it when it opens the file: the virtual size, the backing file
 * and its format (a header extension), the corrupt flag. null for anything qemu might read otherwise (another
 * version, an incompatible feature beyond the dirty and corrupt bits, a header that does not parse): the caller
 * asks qemu-img. A verify reads the header of every file of a chain (docs/benchmarks.md, chain).
 */
export async function readQcow2Header(file: string): Promise<Qcow2FileHeader | null> {
  // synchronous: a header is a few hundred bytes in the page cache, and the hand-offs to libuv's threads of an
  // asynchronous open, reads and close cost more (a chain of 201 files: some 50 ms against a few)
  const fd = openSync(file, 'r');
  try {
    const header = parseQcow2Header(fd);
    if (!header || (header.incompatible & ~(INCOMPATIBLE_DIRTY | INCOMPATIBLE_CORRUPT)) !== 0n) return null;
    const { virtualSize, backingFilename, backingFormat, corrupt } = header;
    return { virtualSize, backingFilename, backingFormat, corrupt, fileBytes: fstatSync(fd).size };
  } finally {
    closeSync(fd);
  }
}

/**
 * Every field of a qcow2 v3 header that the hub reads itself (readQcow2Header, Qcow2ChainView), from a file open
 * as `fd`; null for another version or a header, extension or backing file name that does not parse as qemu
 * reads it. Which incompatible features a caller accepts is its own decision.
 */
export function parseQcow2Header(fd: number): Qcow2HeaderFields | null {
  const read = (buffer: Buffer, position: number) => readSync(fd, buffer, 0, buffer.length, position);
  const fixed = Buffer.alloc(HEADER_V3_BYTES);
  if (read(fixed, 0) < HEADER_V3_BYTES) return null;
  if (fixed.readUInt32BE(0) !== QCOW2_MAGIC || fixed.readUInt32BE(4) !== 3) return null;
  const incompatible = fixed.readBigUInt64BE(72);
  const headerLength = fixed.readUInt32BE(100);
  const clusterBits = fixed.readUInt32BE(20);
  const clusterSize = 2 ** clusterBits;
  if (headerLength < HEADER_V3_BYTES || headerLength % 8 !== 0 || headerLength > clusterSize) return null;
  const backingOffset = Number(fixed.readBigUInt64BE(8));
  const backingLength = fixed.readUInt32BE(16);
  // as qemu reads them: from the header's end to the backing file name, or to the end of the first cluster
  const extensionsEnd = backingLength ? backingOffset : clusterSize;
  if (extensionsEnd > clusterSize) return null;
  const rest = Buffer.alloc(Math.max(0, extensionsEnd - headerLength));
  read(rest, headerLength);
  let backingFormat: string | null = null;
  let bitmapDirectory: Qcow2HeaderFields['bitmapDirectory'] = null;
  for (let at = 0; at < rest.length; ) {
    if (at + 8 > rest.length) return null;
    const type = rest.readUInt32BE(at);
    const length = rest.readUInt32BE(at + 4);
    if (type === EXTENSION_END) break;
    if (at + 8 + length > rest.length) return null;
    if (type === EXTENSION_BACKING_FORMAT) backingFormat = rest.toString('utf8', at + 8, at + 8 + length);
    if (type === EXTENSION_BITMAPS) {
      if (length < 24) return null;
      bitmapDirectory = { count: rest.readUInt32BE(at + 8), bytes: Number(rest.readBigUInt64BE(at + 16)), offset: Number(rest.readBigUInt64BE(at + 24)) };
    }
    at += 8 + Math.ceil(length / 8) * 8;
  }
  let backingFilename: string | null = null;
  if (backingOffset && backingLength) {
    if (backingLength > MAX_BACKING_NAME) return null;
    const name = Buffer.alloc(backingLength);
    if (read(name, backingOffset) !== backingLength) return null;
    backingFilename = name.toString('utf8');
  }
  return {
    virtualSize: Number(fixed.readBigUInt64BE(24)),
    backingFilename,
    backingFormat: backingFilename ? backingFormat : null,
    corrupt: (incompatible & INCOMPATIBLE_CORRUPT) !== 0n,
    clusterBits,
    cryptMethod: fixed.readUInt32BE(32),
    l1Size: fixed.readUInt32BE(36),
    l1Offset: Number(fixed.readBigUInt64BE(40)),
    incompatible,
    autoclear: fixed.readBigUInt64BE(88),
    bitmapDirectory,
  };
}

/**
 * The image's persistent dirty bitmaps from its bitmap directory, as `qemu-img info` lists them; null where qemu
 * would not read the directory as it stands (the extension marked inconsistent by a program without bitmap
 * support, a directory beyond qemu's bounds or one that does not parse, a flag qemu does not know).
 */
export function readQcow2Bitmaps(fd: number, header: Qcow2HeaderFields): Qcow2Bitmap[] | null {
  const directory = header.bitmapDirectory;
  if (!directory) return [];
  if ((header.autoclear & AUTOCLEAR_BITMAPS) === 0n) return null;
  const { count, bytes, offset } = directory;
  if (count === 0 || count > MAX_BITMAPS || bytes > MAX_BITMAP_DIRECTORY_BYTES || bytes < count * BITMAP_ENTRY_BYTES || offset % 2 ** header.clusterBits !== 0) return null;
  const table = Buffer.alloc(bytes);
  if (readSync(fd, table, 0, bytes, offset) !== bytes) return null;
  const bitmaps: Qcow2Bitmap[] = [];
  let at = 0;
  for (let i = 0; i < count; i++) {
    if (at + BITMAP_ENTRY_BYTES > bytes) return null;
    const flags = table.readUInt32BE(at + 12);
    const type = table.readUInt8(at + 16);
    const granularityBits = table.readUInt8(at + 17);
    const nameBytes = table.readUInt16BE(at + 18);
    const extraBytes = table.readUInt32BE(at + 20);
    if ((flags & ~(BITMAP_IN_USE | BITMAP_AUTO | BITMAP_EXTRA_DATA_COMPATIBLE)) !== 0 || type !== 1 || granularityBits < 9 || granularityBits > 31) return null;
    if (nameBytes === 0 || nameBytes > MAX_BITMAP_NAME || (extraBytes !== 0 && !(flags & BITMAP_EXTRA_DATA_COMPATIBLE))) return null;
    const nameAt = at + BITMAP_ENTRY_BYTES + extraBytes;
    if (nameAt + nameBytes > bytes) return null;
    bitmaps.push({
      name: table.toString('utf8', nameAt, nameAt + nameBytes),
      granularity: 2 ** granularityBits,
      flags: [...(flags & BITMAP_IN_USE ? (['in-use'] as const) : []), ...(flags & BITMAP_AUTO ? (['auto'] as const) : [])],
    });
    at = Math.ceil((nameAt + nameBytes) / 8) * 8;
  }
  return at === bytes ? bitmaps : null;
}
