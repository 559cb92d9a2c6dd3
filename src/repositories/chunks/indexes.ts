import { ChunkFormatError, DIGEST_BYTES } from './chunk-format';

/*
 * The two kinds of index a chunk store keeps, as plain bytes (chunk-format.ts compresses and seals them).
 * A pack's index lists its chunks in the order they were appended: digest, offset and length of each record.
 * A point's index names, for every block of a disk, the chunk that holds it as (pack, entry of that pack), or
 * none for a block of zeros. Entries are stored as differences from the one before, column by column: the blocks
 * of a full follow each other in their packs, so a 2 GiB disk's index compresses to a few kilobytes instead of the
 * 1 MiB its 32768 digests would take.
 */

export const PACK_ID = /^[0-9a-f]{16}$/;
const PACK_ENTRY_BYTES = DIGEST_BYTES + 8;
const POINT_MAGIC = Buffer.from('SDPI');

export interface PackEntry {
  digest: Buffer;
  offset: number;
  length: number;
}

export function encodePackIndex(entries: readonly PackEntry[]): Buffer {
  const out = Buffer.alloc(4 + entries.length * PACK_ENTRY_BYTES);
  out.writeUInt32LE(entries.length, 0);
  entries.forEach((e, k) => {
    const at = 4 + k * PACK_ENTRY_BYTES;
    e.digest.copy(out, at);
    out.writeUInt32LE(e.offset, at + DIGEST_BYTES);
    out.writeUInt32LE(e.length, at + DIGEST_BYTES + 4);
  });
  return out;
}

export function decodePackIndex(bytes: Buffer, name: string): PackEntry[] {
  const count = bytes.length >= 4 ? bytes.readUInt32LE(0) : -1;
  if (count < 0 || bytes.length !== 4 + count * PACK_ENTRY_BYTES) throw new ChunkFormatError(`${name} is not a pack index (${bytes.length} bytes)`);
  return Array.from({ length: count }, (_, k) => {
    const at = 4 + k * PACK_ENTRY_BYTES;
    return { digest: Buffer.from(bytes.subarray(at, at + DIGEST_BYTES)), offset: bytes.readUInt32LE(at + DIGEST_BYTES), length: bytes.readUInt32LE(at + DIGEST_BYTES + 4) };
  });
}

/** Where a block's chunk is: a pack and the entry of that pack's index. */
export interface ChunkLocation {
  packId: string;
  entry: number;
}

export interface PointIndex {
  /** The disk's size in bytes. */
  size: number;
  chunkSize: number;
  /** One per block; null for a block of zeros. */
  blocks: (ChunkLocation | null)[];
}

export function encodePointIndex(index: PointIndex): Buffer {
  // plain loops over the blocks, no array or closure per block: a commit encodes its point as its export stops, and
  // a new process runs this code cold (flatMap and forEach took 9 ms for 4096 blocks, 126 ms for 262144)
  const { blocks } = index;
  const n = blocks.length;
  const packNumber = new Map<string, number>();
  const packs: string[] = [];
  for (let i = 0; i < n; i++) {
    const b = blocks[i];
    if (b && !packNumber.has(b.packId)) packNumber.set(b.packId, packs.push(b.packId));
  }
  const out = Buffer.alloc(POINT_MAGIC.length + 1 + 8 + 4 + 4 + packs.length * 8 + 4 + n * 8);
  let at = POINT_MAGIC.copy(out, 0);
  out[at++] = 1;
  out.writeBigUInt64LE(BigInt(index.size), at);
  at += 8;
  out.writeUInt32LE(index.chunkSize, at);
  at += 4;
  out.writeUInt32LE(packs.length, at);
  at += 4;
  for (const p of packs) at += out.write(p, at, 'hex');
  out.writeUInt32LE(n, at);
  at += 4;
  const view = new DataView(out.buffer, out.byteOffset + at, n * 8);
  let previous = -1;
  let packId = '';
  let number = 0;
  for (let i = 0; i < n; i++) {
    const b = blocks[i];
    if (!b) continue;
    if (b.packId !== packId) {
      packId = b.packId;
      number = packNumber.get(packId)!;
    }
    view.setUint32(i * 4, number, true);
    view.setInt32(n * 4 + i * 4, b.entry - (previous + 1), true);
    previous = b.entry;
  }
  return out;
}

export function decodePointIndex(bytes: Buffer, name: string): PointIndex {
  const fail = (why: string) => new ChunkFormatError(`${name} is not a point index: ${why}`);
  if (bytes.length < POINT_MAGIC.length + 21 || !bytes.subarray(0, POINT_MAGIC.length).equals(POINT_MAGIC)) throw fail('no header');
  let at = POINT_MAGIC.length;
  if (bytes[at++] !== 1) throw fail(`version ${bytes[at - 1]}`);
  const size = Number(bytes.readBigUInt64LE(at));
  at += 8;
  const chunkSize = bytes.readUInt32LE(at);
  at += 4;
  const packCount = bytes.readUInt32LE(at);
  at += 4;
  if (bytes.length < at + packCount * 8 + 4) throw fail('truncated pack table');
  const packs = Array.from({ length: packCount }, (_, k) => bytes.subarray(at + k * 8, at + k * 8 + 8).toString('hex'));
  at += packCount * 8;
  const n = bytes.readUInt32LE(at);
  at += 4;
  if (bytes.length !== at + n * 8) throw fail(`${n} blocks in ${bytes.length} bytes`);
  if (!Number.isSafeInteger(size) || chunkSize <= 0 || n !== Math.ceil(size / chunkSize)) throw fail(`${n} blocks of ${chunkSize} bytes for a disk of ${size}`);
  let previous = -1;
  const blocks = Array.from({ length: n }, (_, i): ChunkLocation | null => {
    const pack = bytes.readUInt32LE(at + i * 4);
    if (pack === 0) return null;
    if (pack > packCount) throw fail(`block ${i} names pack ${pack} of ${packCount}`);
    const entry = previous + 1 + bytes.readInt32LE(at + n * 4 + i * 4);
    if (entry < 0) throw fail(`block ${i} names entry ${entry}`);
    previous = entry;
    return { packId: packs[pack - 1], entry };
  });
  return { size, chunkSize, blocks };
}
