import { createCipheriv, createDecipheriv, hkdfSync, randomBytes } from 'node:crypto';
import { compress, decompress } from 'zstd-napi';
import { DCtx } from 'zstd-napi/binding';

/*
 * The bytes of a chunk store (docs/design/storage.md): a chunk is one 64 KiB block of a disk, named by the SHA-256
 * of its plaintext. A record is a flag byte (compressed or not) and the body, zstd-compressed when that makes it
 * smaller; in an encrypted store the record is sealed with AES-256-GCM under the data key, a random 96-bit nonce
 * in front and the tag behind, and the chunk's digest as associated data: a record moved under another digest
 * fails to open. Metadata objects (pack and point indexes) are zstd-compressed and, in an encrypted store, sealed
 * under the metadata key with their own name as associated data, so one cannot stand in for another.
 */

export const CHUNK_SIZE = 64 * 1024;
export const DIGEST_BYTES = 32;
const NONCE = 12;
const TAG = 16;
const COMPRESSED = 1;
const META_MAGIC = Buffer.from('SDM1');

export class ChunkFormatError extends Error {}

/** The two keys a repository key is split into: one for chunks, one for the indexes that name them. */
export interface StoreKeys {
  data: Buffer;
  meta: Buffer;
}

export function deriveKeys(repositoryKey: Buffer): StoreKeys {
  if (repositoryKey.length < 32) throw new ChunkFormatError(`a repository key must have at least 32 bytes, this one has ${repositoryKey.length}`);
  const derive = (info: string) => Buffer.from(hkdfSync('sha256', repositoryKey, 'sendense chunk store v1', info, 32));
  return { data: derive('chunks'), meta: derive('indexes') };
}

let nonces = Buffer.alloc(0);
let nextNonce = 0;

/**
 * A random nonce, cut from a pool of 512 drawn at once: randomBytes(12) costs 11 µs a call here, 0.18 CPU s per GiB
 * of chunks sealed on the main thread, against 0.5 µs a nonce this way. A pool is never written again once drawn (a
 * new one replaces it), so a nonce still waiting to be written to its pack keeps its bytes.
 */
function takeNonce(): Buffer {
  if (nextNonce + NONCE > nonces.length) {
    nonces = randomBytes(NONCE * 512);
    nextNonce = 0;
  }
  nextNonce += NONCE;
  return nonces.subarray(nextNonce - NONCE, nextNonce);
}

/** A sealed object as the pieces it is written from, in order: nonce, ciphertext, tag. */
function sealParts(key: Buffer, plaintext: Buffer[], aad: Buffer): Buffer[] {
  const nonce = takeNonce();
  const cipher = createCipheriv('aes-256-gcm', key, nonce);
  cipher.setAAD(aad);
  const body = plaintext.map((p) => cipher.update(p));
  return [nonce, ...body, cipher.final(), cipher.getAuthTag()].filter((p) => p.length > 0);
}

function seal(key: Buffer, plaintext: Buffer[], aad: Buffer): Buffer {
  return Buffer.concat(sealParts(key, plaintext, aad));
}

function unseal(key: Buffer, record: Buffer, aad: Buffer, what: string): Buffer {
  if (record.length < NONCE + TAG) throw new ChunkFormatError(`${what} is too short to be sealed (${record.length} bytes)`);
  const decipher = createDecipheriv('aes-256-gcm', key, record.subarray(0, NONCE));
  decipher.setAAD(aad);
  decipher.setAuthTag(record.subarray(record.length - TAG));
  try {
    const body = decipher.update(record.subarray(NONCE, record.length - TAG));
    const tail = decipher.final();
    // GCM's final gives nothing back: no copy of the whole chunk to append it
    return tail.length ? Buffer.concat([body, tail]) : body;
  } catch {
    throw new ChunkFormatError(`${what} does not open with this repository's key: another key, or damaged`);
  }
}

/**
 * Whether a block is worth handing to zstd, judged as btrfs judges its extents: by the byte entropy of samples (four
 * of 512 bytes spread over the block). Random, encrypted or already compressed data measures close to 8 bits a
 * byte (7.88-7.93 in 2,000 random blocks); zstd would spend ~0.85 CPU-s per GiB on it (measured by hand here) to
 * store it raw all the same. The bound, 7.8, lets a block with a quarter of text (~7.6) through to zstd. A short
 * block is always tried. Self-contained: the chunk workers run its source (chunk-workers.ts).
 */
export function worthCompressing(data: Uint8Array): boolean {
  if (data.length < 16384) return true;
  const counts = new Uint16Array(256);
  for (let i = 0; i < 4; i++) {
    const from = Math.floor((i * (data.length - 512)) / 3);
    for (let k = from; k < from + 512; k++) counts[data[k]]++;
  }
  let bits = 0;
  for (let i = 0; i < 256; i++) if (counts[i]) bits -= (counts[i] / 2048) * Math.log2(counts[i] / 2048);
  return bits < 7.8;
}

/** The record of a chunk as stored in a pack; `compressible`, when the caller judged the block already. */
export function sealChunk(digest: Buffer, data: Buffer, key: Buffer | null, level = 3, compressible = worthCompressing(data)): Buffer {
  return Buffer.concat(sealChunkParts(digest, data, key, level, compressible));
}

/**
 * The same record as the pieces it is made of, for a writer that writes them with one writev: joining them would
 * copy every chunk once more, and each 64 KiB buffer allocated and dropped drives V8 to collect garbage (a fifth
 * of chunk-nbd's CPU on a full of random data). A plain store's incompressible record holds `data` itself.
 */
export function sealChunkParts(digest: Buffer, data: Buffer, key: Buffer | null, level = 3, compressible = worthCompressing(data)): Buffer[] {
  const packed = compressible ? compress(data, { compressionLevel: level }) : data;
  const [flag, body] = packed.length < data.length ? [COMPRESSED, packed] : [0, data];
  const parts = [Buffer.of(flag), body];
  return key ? sealParts(key, parts, digest) : parts;
}

/** A chunk's record opened (checked and decrypted) but not decompressed: its body, a zstd frame of the block when `compressed`. */
export interface PackedChunk {
  compressed: boolean;
  body: Buffer;
}

/**
 * A chunk's record as openChunk opens it, short of decompressing it: a download sends a compressed body as it is, for
 * the client to decompress (image-extents.ts), so that zstd, most of a chunk restore's CPU, runs on the client's
 * core rather than on the hub's.
 */
export function openChunkPacked(digest: Buffer, record: Buffer, key: Buffer | null): PackedChunk {
  const plain = key ? unseal(key, record, digest, `chunk ${digest.toString('hex')}`) : record;
  if (plain.length < 1 || plain[0] > COMPRESSED) throw new ChunkFormatError(`chunk ${digest.toString('hex')} has no valid record`);
  return { compressed: plain[0] === COMPRESSED, body: plain.subarray(1) };
}

let decompressor: DCtx | undefined;

/**
 * The plaintext of a chunk's record; `digest` is the name it was stored under. With `into` (room for a whole block)
 * the plaintext is written there and the part of `into` it fills is returned: a restore opens each block straight
 * into the buffer it sends, where a new 64 KiB buffer per block cost a copy and V8's collections of them.
 */
export function openChunk(digest: Buffer, record: Buffer, key: Buffer | null, into?: Buffer): Buffer {
  const { compressed, body } = openChunkPacked(digest, record, key);
  if (!into) return compressed ? decompress(body) : body;
  if (!compressed) {
    if (body.length > into.length) throw new ChunkFormatError(`chunk ${digest.toString('hex')} holds ${body.length} bytes, more than a block`);
    return into.subarray(0, body.copy(into));
  }
  try {
    return into.subarray(0, (decompressor ??= new DCtx()).decompress(into, body));
  } catch (error) {
    throw new ChunkFormatError(`chunk ${digest.toString('hex')} does not decompress into a block: ${(error as Error).message}`);
  }
}

/**
 * zstd's level for indexes. A point's index grows with its disk (8 bytes a block) and is written at every commit:
 * for a 100 GiB disk, 3.8 s at level 19 against 20 ms at 3 (measured here), for 0.74 MB stored instead of 0.44.
 */
const META_LEVEL = 3;

/** A metadata object as written: compressed, and sealed under the metadata key with its name when the store is encrypted. */
export function sealMeta(name: string, content: Buffer, key: Buffer | null): Buffer {
  const packed = compress(content, { compressionLevel: META_LEVEL });
  return key ? Buffer.concat([META_MAGIC, seal(key, [packed], Buffer.from(name))]) : Buffer.concat([META_MAGIC, packed]);
}

export function openMeta(name: string, object: Buffer, key: Buffer | null): Buffer {
  if (!object.subarray(0, META_MAGIC.length).equals(META_MAGIC)) throw new ChunkFormatError(`${name} is not an index of this store`);
  const body = object.subarray(META_MAGIC.length);
  try {
    return decompress(key ? unseal(key, body, Buffer.from(name), name) : body);
  } catch (error) {
    if (error instanceof ChunkFormatError) throw error;
    throw new ChunkFormatError(`${name} is damaged: ${(error as Error).message}`);
  }
}
