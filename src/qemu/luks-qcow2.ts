import { createCipheriv, hash, pbkdf2, randomBytes, randomUUID } from 'node:crypto';
import { promises as fs } from 'node:fs';
import { promisify } from 'node:util';

const pbkdf2Async = promisify(pbkdf2);

/**
 * A new encrypted qcow2 file, written here instead of by `qemu-img create`: qemu measures PBKDF2's speed before it
 * writes a LUKS header (more than half a second of CPU, twice: for the master key's digest and for the key slot,
 * whatever encrypt.iter-time says), which cost 2.3 s of CPU per new file, once per disk per backup, and made an
 * encrypted incremental take four times a plain one (docs/benchmarks.md, Encryption at rest). The file is what
 * qemu-img create writes, byte for byte where it matters: qcow2 v3, 16-bit refcounts, the LUKS1 header qemu's
 * crypto/block-luks.c writes (aes-256, xts-plain64, sha256, one active key slot of 4000 stripes), with the same
 * PBKDF2 work qemu did with encrypt.iter-time=10 on the machine the figures come from (see the constants). qemu opens
 * and checks it like its own (luks-qcow2.int.spec.ts), and files qemu wrote before open as they always did: a
 * header names its own parameters.
 */

/** qemu's minimum for the master key's digest, and what it wrote with a 10 ms iter-time (its count over 8, then the minimum). */
export const MASTER_KEY_DIGEST_ITERATIONS = 1000;
/**
 * The key slot's PBKDF2 count, a fixed one instead of one measured per file: qemu measured 26,792 for 10 ms on the
 * bench machine; 32,768 keeps an open of each encrypted file of a chain at about the cost it had (docs/security.md).
 */
export const KEY_SLOT_ITERATIONS = 32_768;

const SECTOR = 512;
const LUKS_MAGIC = Buffer.from([0x4c, 0x55, 0x4b, 0x53, 0xba, 0xbe]);
const LUKS_HEADER_BYTES = 592;
const KEY_BYTES = 64; // aes-256 in XTS: two 256-bit keys
const DIGEST_BYTES = 20;
const SALT_BYTES = 32;
const STRIPES = 4000;
const KEY_SLOTS = 8;
const SLOT_ACTIVE = 0x00ac71f3;
const SLOT_DISABLED = 0x0000dead;
/** Key material starts after the first 4096 bytes; each slot's is rounded up to that too (as cryptsetup and qemu place it). */
const KEY_SLOT_ALIGN_SECTORS = 4096 / SECTOR;
const SPLIT_KEY_BYTES = KEY_BYTES * STRIPES;
const SLOT_SECTORS = Math.ceil(Math.ceil(SPLIT_KEY_BYTES / SECTOR) / KEY_SLOT_ALIGN_SECTORS) * KEY_SLOT_ALIGN_SECTORS;
/** The whole LUKS area: header, then eight key slots' material; qemu's payload offset, in sectors. */
const PAYLOAD_SECTORS = KEY_SLOT_ALIGN_SECTORS + SLOT_SECTORS * KEY_SLOTS;
export const LUKS_AREA_BYTES = PAYLOAD_SECTORS * SECTOR;

/**
 * The LUKS1 area of a new file (crypto/block-luks.c's create): a random master key, its PBKDF2 digest, and key slot 0
 * holding it AF-split and encrypted with a key derived from `passphrase` (the key file's bytes, as qemu's secret
 * object reads them). The other slots are disabled; their material is zeros.
 */
export async function luksArea(passphrase: Buffer): Promise<Buffer> {
  const area = Buffer.alloc(LUKS_AREA_BYTES);
  const masterKey = randomBytes(KEY_BYTES);
  const masterSalt = randomBytes(SALT_BYTES);
  const slotSalt = randomBytes(SALT_BYTES);
  const [digest, slotKey] = await Promise.all([
    pbkdf2Async(masterKey, masterSalt, MASTER_KEY_DIGEST_ITERATIONS, DIGEST_BYTES, 'sha256'),
    pbkdf2Async(passphrase, slotSalt, KEY_SLOT_ITERATIONS, KEY_BYTES, 'sha256'),
  ]);

  let at = 0;
  at += LUKS_MAGIC.copy(area, at);
  at = area.writeUInt16BE(1, at);
  area.write('aes', at, 'latin1');
  at += 32;
  area.write('xts-plain64', at, 'latin1');
  at += 32;
  area.write('sha256', at, 'latin1');
  at += 32;
  at = area.writeUInt32BE(PAYLOAD_SECTORS, at);
  at = area.writeUInt32BE(KEY_BYTES, at);
  at += digest.copy(area, at);
  at += masterSalt.copy(area, at);
  at = area.writeUInt32BE(MASTER_KEY_DIGEST_ITERATIONS, at);
  area.write(randomUUID(), at, 'latin1');
  at += 40;
  for (let slot = 0; slot < KEY_SLOTS; slot++) {
    at = area.writeUInt32BE(slot === 0 ? SLOT_ACTIVE : SLOT_DISABLED, at);
    at = area.writeUInt32BE(slot === 0 ? KEY_SLOT_ITERATIONS : 0, at);
    if (slot === 0) slotSalt.copy(area, at);
    at += SALT_BYTES;
    at = area.writeUInt32BE(KEY_SLOT_ALIGN_SECTORS + SLOT_SECTORS * slot, at);
    at = area.writeUInt32BE(STRIPES, at);
  }
  if (at !== LUKS_HEADER_BYTES) throw new Error(`LUKS header came out at ${at} bytes, not ${LUKS_HEADER_BYTES}`);

  const material = afSplit(masterKey);
  // encrypted as the payload is: sector by sector, each sector's number (from 0) as its XTS tweak (plain64)
  for (let sector = 0; sector * SECTOR < material.length; sector++) {
    const iv = Buffer.alloc(16);
    iv.writeBigUInt64LE(BigInt(sector));
    const cipher = createCipheriv('aes-256-xts', slotKey, iv).setAutoPadding(false);
    const plain = material.subarray(sector * SECTOR, (sector + 1) * SECTOR);
    const encrypted = Buffer.concat([cipher.update(plain), cipher.final()]);
    encrypted.copy(area, KEY_SLOT_ALIGN_SECTORS * SECTOR + sector * SECTOR);
  }
  masterKey.fill(0);
  slotKey.fill(0);
  material.fill(0);
  return area;
}

/** LUKS's anti-forensic split (crypto/afsplit.c): stripes-1 random blocks, each folded into a running diffusion, the last one the key XOR that. */
function afSplit(key: Buffer): Buffer {
  const out = randomBytes(key.length * STRIPES);
  const block = Buffer.alloc(key.length);
  for (let i = 0; i < STRIPES - 1; i++) {
    xorInto(block, out.subarray(i * key.length, (i + 1) * key.length));
    diffuse(block);
  }
  const last = out.subarray((STRIPES - 1) * key.length);
  for (let j = 0; j < key.length; j++) last[j] = key[j] ^ block[j];
  block.fill(0);
  return out;
}

function xorInto(target: Buffer, source: Buffer): void {
  for (let j = 0; j < target.length; j++) target[j] ^= source[j];
}

/** Each digest-sized piece replaced by sha256(big-endian piece index || piece), the last one truncated. */
function diffuse(block: Buffer): void {
  const digestBytes = 32;
  const input = Buffer.alloc(4 + digestBytes);
  for (let i = 0; i * digestBytes < block.length; i++) {
    const piece = block.subarray(i * digestBytes, Math.min((i + 1) * digestBytes, block.length));
    input.writeUInt32BE(i);
    piece.copy(input, 4);
    hash('sha256', input.subarray(0, 4 + piece.length), 'buffer').copy(piece, 0, 0, piece.length);
  }
}

interface EncryptedQcow2Options {
  virtualSize: number;
  clusterSize?: number;
  /** As the header stores it (relative to the new file's directory, as the hub writes them). */
  backingFile?: string;
}

const QCOW2_MAGIC = 0x514649fb;
const QCOW2_HEADER_BYTES = 112;
const CRYPT_LUKS = 2;
const REFCOUNT_ORDER = 4; // 16-bit refcounts, qemu's default
const EXTENSION_BACKING_FORMAT = 0xe2792aca;
const EXTENSION_CRYPTO = 0x0537be77;
const MAX_BACKING_NAME = 1023;

/**
 * The bytes of a new, empty encrypted qcow2 (`luks` from luksArea), laid out as qemu-img create lays it out: the
 * header in cluster 0, the refcount table in cluster 1, its refcount blocks after it, then the L1 table, then the
 * LUKS area; every one of those clusters counted once, nothing else allocated.
 */
export function encryptedQcow2(options: EncryptedQcow2Options, luks: Buffer): Buffer {
  const clusterSize = options.clusterSize ?? 65536;
  if (!Number.isInteger(Math.log2(clusterSize)) || clusterSize < 512 || clusterSize > 2 * 1024 * 1024) throw new Error(`cluster size ${clusterSize} is not a power of two from 512 to 2 MiB`);
  if (!Number.isSafeInteger(options.virtualSize) || options.virtualSize <= 0) throw new Error(`virtual size must be a positive integer, got ${options.virtualSize}`);
  const clusterBits = Math.log2(clusterSize);
  // qemu reads a qcow2's size in whole sectors, rounding a partial one away; qemu-img create rounds it up instead
  const virtualSize = Math.ceil(options.virtualSize / SECTOR) * SECTOR;
  const l1Entries = Math.ceil(virtualSize / (clusterSize * (clusterSize / 8)));
  const l1Clusters = Math.max(1, Math.ceil((l1Entries * 8) / clusterSize));
  const luksClusters = Math.ceil(luks.length / clusterSize);
  const refcountsPerBlock = (clusterSize * 8) / 2 ** REFCOUNT_ORDER;
  // the refcount blocks count themselves too
  let refcountBlocks = 1;
  while (Math.ceil((2 + refcountBlocks + l1Clusters + luksClusters) / refcountsPerBlock) > refcountBlocks) refcountBlocks++;
  if (refcountBlocks > clusterSize / 8) throw new Error(`a ${virtualSize}-byte image with ${clusterSize}-byte clusters needs more than one cluster of refcount table`);
  const refcountBlockAt = 2;
  const l1At = refcountBlockAt + refcountBlocks;
  const luksAt = l1At + l1Clusters;
  const clusters = luksAt + luksClusters;

  const file = Buffer.alloc(clusters * clusterSize);
  file.writeUInt32BE(QCOW2_MAGIC, 0);
  file.writeUInt32BE(3, 4);
  file.writeUInt32BE(clusterBits, 20);
  file.writeBigUInt64BE(BigInt(virtualSize), 24);
  file.writeUInt32BE(CRYPT_LUKS, 32);
  file.writeUInt32BE(l1Entries, 36);
  file.writeBigUInt64BE(BigInt(l1At * clusterSize), 40);
  file.writeBigUInt64BE(BigInt(clusterSize), 48);
  file.writeUInt32BE(1, 56); // refcount table clusters
  file.writeUInt32BE(REFCOUNT_ORDER, 96);
  file.writeUInt32BE(QCOW2_HEADER_BYTES, 100);
  // header extensions, each padded to 8 bytes; the backing file's name follows the end marker
  let at = QCOW2_HEADER_BYTES;
  if (options.backingFile !== undefined) {
    at = file.writeUInt32BE(EXTENSION_BACKING_FORMAT, at);
    at = file.writeUInt32BE(5, at);
    file.write('qcow2', at, 'latin1');
    at += 8;
  }
  at = file.writeUInt32BE(EXTENSION_CRYPTO, at);
  at = file.writeUInt32BE(16, at);
  at = file.writeBigUInt64BE(BigInt(luksAt * clusterSize), at);
  at = file.writeBigUInt64BE(BigInt(luks.length), at);
  at += 8; // end of extensions: type 0, length 0
  if (options.backingFile !== undefined) {
    const name = Buffer.from(options.backingFile, 'utf8');
    if (name.length === 0 || name.length > MAX_BACKING_NAME || at + name.length > clusterSize) throw new Error(`backing file name of ${name.length} bytes does not fit the header`);
    file.writeBigUInt64BE(BigInt(at), 8);
    file.writeUInt32BE(name.length, 16);
    name.copy(file, at);
  }
  for (let block = 0; block < refcountBlocks; block++) file.writeBigUInt64BE(BigInt((refcountBlockAt + block) * clusterSize), clusterSize + block * 8);
  for (let cluster = 0; cluster < clusters; cluster++) file.writeUInt16BE(1, refcountBlockAt * clusterSize + cluster * 2);
  luks.copy(file, luksAt * clusterSize);
  return file;
}

/** Writes a new encrypted qcow2 at `target` (replacing what is there, as qemu-img create does), its key slot opened by `keyFile`. */
export async function createEncryptedQcow2(target: string, keyFile: string, options: EncryptedQcow2Options): Promise<void> {
  const passphrase = await fs.readFile(keyFile);
  try {
    const image = encryptedQcow2(options, await luksArea(passphrase));
    await fs.writeFile(target, image);
  } finally {
    passphrase.fill(0);
  }
}
