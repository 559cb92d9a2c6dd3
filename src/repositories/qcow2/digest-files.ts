import { createHash } from 'node:crypto';
import { closeSync, fstatSync, promises as fs, openSync, readSync } from 'node:fs';
import { join } from 'node:path';
import { BlockDigests, DigestFormatError } from '../../wire/block-digests';
import { removeDurably, writeFileAtomic } from './durable-fs';

/** What a manifest disk records of its digest file (the same shape as the chain's DigestRef). */
export interface DigestFileRef {
  /** Relative to the repository root. */
  file: string;
  sha256: string;
  blocks: number;
}

/**
 * Digest files live beside the manifests (`<vm>/manifests/<point>.<disk>.digests`): a rescan that
 * finds a manifest finds its digests, and a manifest names its digest file with that file's SHA-256.
 */
export function digestFileOf(vmId: string, restorePointId: string, diskId: string): string {
  return `${vmId}/manifests/${restorePointId}.${diskId}.digests`;
}

export class DigestFileError extends Error {
  constructor(file: string, reason: string) {
    super(`block digest file ${file} ${reason}`);
    this.name = 'DigestFileError';
  }
}

const sha256 = (data: Buffer) => createHash('sha256').update(data).digest('hex');

/** Written atomically (temp file, fsync, rename, fsync of the directory): readers see the old set or the new one. */
export async function writeDigestFile(root: string, file: string, digests: BlockDigests): Promise<DigestFileRef> {
  const data = digests.encode();
  await fs.mkdir(join(root, file, '..'), { recursive: true });
  await writeFileAtomic(join(root, file), data);
  return { file, sha256: sha256(data), blocks: digests.blockCount };
}

/** The ref of a digest file that is there and well-formed, or null when there is none. */
export async function digestFileRef(root: string, file: string): Promise<DigestFileRef | null> {
  const data = await fs.readFile(join(root, file)).catch((error: NodeJS.ErrnoException) => {
    if (error.code === 'ENOENT') return null;
    throw error;
  });
  if (!data) return null;
  return { file, sha256: sha256(data), blocks: decode(file, data).blockCount };
}

/** Reads a digest file and proves it is the one the ref names; a missing or changed file is an error. */
export async function readDigestFile(root: string, ref: DigestFileRef): Promise<BlockDigests> {
  const data = await readWhole(join(root, ref.file)).catch((error: NodeJS.ErrnoException) => {
    throw new DigestFileError(ref.file, error.code === 'ENOENT' ? 'is missing' : `cannot be read: ${error.message}`);
  });
  if (sha256(data) !== ref.sha256) throw new DigestFileError(ref.file, 'does not match the SHA-256 its manifest records (the digest file is damaged)');
  return decode(ref.file, data);
}

/** Readable or null (missing); a damaged file still throws, so a merge never drops digests silently. */
export async function readDigestFileIfPresent(root: string, ref: DigestFileRef): Promise<BlockDigests | null> {
  const there = await fs.stat(join(root, ref.file)).then(() => true, () => false);
  return there ? readDigestFile(root, ref) : null;
}

/**
 * The digests of a point that now holds an older point's blocks too (merge into child, removal of a
 * middle point): the union, the newer point's own blocks winning, written over the newer point's file.
 * Safe to run again after a crash: the union of a union is the same set, so a newer file that no longer
 * matches its recorded SHA-256 is accepted only when it is exactly that union; once the older file is
 * gone the newer one already is the union.
 */
export async function combineDigestFiles(root: string, older: DigestFileRef | null | undefined, newer: DigestFileRef | null | undefined): Promise<DigestFileRef | null> {
  // a side without digests leaves blocks nobody can vouch for: the result has none
  if (!older || !newer) return null;
  const olderSet = await readDigestFileIfPresent(root, older);
  const newerData = await fs.readFile(join(root, newer.file)).catch((error: NodeJS.ErrnoException) => {
    throw new DigestFileError(newer.file, error.code === 'ENOENT' ? 'is missing' : `cannot be read: ${error.message}`);
  });
  const newerSet = decode(newer.file, newerData);
  if (!olderSet) return { file: newer.file, sha256: sha256(newerData), blocks: newerSet.blockCount };
  const union = BlockDigests.union(olderSet, newerSet);
  if (sha256(newerData) !== newer.sha256 && !union.encode().equals(newerData)) {
    throw new DigestFileError(newer.file, 'does not match the SHA-256 its manifest records (the digest file is damaged)');
  }
  return writeDigestFile(root, newer.file, union);
}

/**
 * The digests of a synthetic full (a standalone copy of a point's view, with the changes since it written on top):
 * every block the copied lineage's points wrote (oldest first, later ones winning), then the backup's own, written over
 * the backup's own digest file. Null when a side has none, or the disk's size changed along the way (a grown disk's
 * older digests do not combine): the point then has no digests, and a verify says its coverage is partial.
 */
export async function synthesizedDigestFile(root: string, lineage: readonly (DigestFileRef | null | undefined)[], own: DigestFileRef | null): Promise<DigestFileRef | null> {
  if (!own || lineage.some((ref) => !ref)) return null;
  let combined: BlockDigests | null = null;
  for (const ref of [...lineage, own] as DigestFileRef[]) {
    const next = await readDigestFile(root, ref);
    if (combined && combined.virtualSize !== next.virtualSize) return null;
    combined = combined ? BlockDigests.union(combined, next) : next;
  }
  return writeDigestFile(root, own.file, combined!);
}

export function removeDigestFile(root: string, file: string): Promise<boolean> {
  return removeDurably(join(root, file));
}

/** An incremental's digest file is a few hundred bytes; a full's may be many MiB (32 bytes per 64 KiB of data). */
const READ_NOW_BYTES = 1 << 20;

/**
 * A small file read on the calling thread: a verify reads the digest file of every point of its chain, and four
 * hand-offs to libuv's threads (open, stat, read, close) cost more than reading one (docs/benchmarks.md, chain).
 * A large one is read through those threads, so that it does not hold the event loop.
 */
async function readWhole(file: string): Promise<Buffer> {
  const fd = openSync(file, 'r');
  try {
    const size = fstatSync(fd).size;
    if (size > READ_NOW_BYTES) return await fs.readFile(file);
    const data = Buffer.allocUnsafe(size);
    let done = 0;
    while (done < size) {
      const n = readSync(fd, data, done, size - done, done);
      if (n === 0) break;
      done += n;
    }
    return data.subarray(0, done);
  } finally {
    closeSync(fd);
  }
}

function decode(file: string, data: Buffer): BlockDigests {
  try {
    return BlockDigests.decode(data);
  } catch (error) {
    if (error instanceof DigestFormatError) throw new DigestFileError(file, `is not a digest file: ${error.message}`);
    throw error;
  }
}
