import { createHash } from 'node:crypto';

/**
 * Block digests: what the agent hashed while it sent a disk, and what a verify compares the
 * repository's data with. A digest describes the LOGICAL content of the disk at one restore point
 * over one aligned block (the point's file read with its backing chain), so merging or rebasing the
 * chain keeps it true. A point's set holds the blocks that point wrote.
 *
 * 64 KiB blocks: the dirty-bitmap granularity and the incremental copy's unit, so an incremental
 * hashes exactly what it writes and never has to read more of the source to complete a block.
 * SHA-256: with the SHA extensions of current CPUs it is the fastest hash Node's crypto offers here
 * (measured in docs/benchmarks.md), and it leaves no doubt about accidental collisions.
 */
export const DIGEST_BLOCK_SIZE = 64 * 1024;
export const DIGEST_ALGORITHM = 'sha256';
export const DIGEST_LENGTH = 32;

const MAGIC = Buffer.from('SDDIGST1', 'latin1');
const ALGORITHM_SHA256 = 1;
const HEADER_BYTES = 8 + 4 + 1 + 1 + 2 + 8 + 4;
const RUN_HEADER_BYTES = 8 + 4 + 4;
const KIND_DATA = 0;
const KIND_ZERO = 1;

/**
 * Consecutive blocks `first .. first+count-1`: either zeroes (the writer wrote zeroes, no digests
 * stored) or data with `count` digests back to back.
 */
export interface DigestRun {
  first: number;
  count: number;
  zero: boolean;
  digests: Buffer | null;
}

export class DigestFormatError extends Error {
  constructor(message: string) {
    super(`invalid block digest file: ${message}`);
    this.name = 'DigestFormatError';
  }
}

export function digestOf(data: Buffer): Buffer {
  return createHash(DIGEST_ALGORITHM).update(data).digest();
}

const zeroDigests = new Map<number, Buffer>();
/** The digest of `length` zero bytes (a whole block, or the short last block of a disk). */
export function zeroDigest(length: number): Buffer {
  let d = zeroDigests.get(length);
  if (!d) zeroDigests.set(length, (d = digestOf(Buffer.alloc(length))));
  return d;
}

/** The digests of one disk at one restore point: sorted, disjoint runs of blocks. */
export class BlockDigests {
  readonly blockSize = DIGEST_BLOCK_SIZE;

  constructor(
    readonly virtualSize: number,
    readonly runs: readonly DigestRun[],
  ) {}

  get blockCount(): number {
    return this.runs.reduce((n, r) => n + r.count, 0);
  }

  /** Bytes of the disk the set describes (the short last block counts its real length). */
  get bytes(): number {
    return this.runs.reduce((n, r) => n + runBytes(r, this.virtualSize), 0);
  }

  blockLength(block: number): number {
    return Math.min(DIGEST_BLOCK_SIZE, this.virtualSize - block * DIGEST_BLOCK_SIZE);
  }

  /** The recorded digest of a block, or null when this point did not write it. */
  digestAt(block: number): Buffer | null {
    const run = this.runAt(block);
    if (!run) return null;
    return run.zero ? zeroDigest(this.blockLength(block)) : run.digests!.subarray((block - run.first) * DIGEST_LENGTH, (block - run.first + 1) * DIGEST_LENGTH);
  }

  covers(block: number): boolean {
    return this.runAt(block) !== undefined;
  }

  private runAt(block: number): DigestRun | undefined {
    let lo = 0;
    let hi = this.runs.length - 1;
    while (lo <= hi) {
      const mid = (lo + hi) >> 1;
      const r = this.runs[mid];
      if (block < r.first) hi = mid - 1;
      else if (block >= r.first + r.count) lo = mid + 1;
      else return r;
    }
    return undefined;
  }

  /** These blocks except those `newer` covers: what a later point leaves visible of this one. */
  minus(newer: Iterable<{ first: number; count: number }>): BlockDigests {
    return new BlockDigests(this.virtualSize, subtract(this.runs, [...newer]));
  }

  /** The digests of a point that now holds both sets' content, `newer` winning where both wrote (merge, rebase). */
  static union(older: BlockDigests, newer: BlockDigests): BlockDigests {
    if (older.virtualSize !== newer.virtualSize) throw new DigestFormatError(`cannot combine digests of a ${older.virtualSize}-byte and a ${newer.virtualSize}-byte disk`);
    const pieces = [...subtract(older.runs, newer.runs), ...newer.runs].sort((a, b) => a.first - b.first);
    return new BlockDigests(newer.virtualSize, coalesce(pieces));
  }

  encode(): Buffer {
    const parts: Buffer[] = [];
    const header = Buffer.alloc(HEADER_BYTES);
    MAGIC.copy(header, 0);
    header.writeUInt32LE(DIGEST_BLOCK_SIZE, 8);
    header.writeUInt8(ALGORITHM_SHA256, 12);
    header.writeUInt8(DIGEST_LENGTH, 13);
    header.writeBigUInt64LE(BigInt(this.virtualSize), 16);
    header.writeUInt32LE(this.runs.length, 24);
    parts.push(header);
    for (const r of this.runs) {
      const h = Buffer.alloc(RUN_HEADER_BYTES);
      h.writeBigUInt64LE(BigInt(r.first), 0);
      h.writeUInt32LE(r.count, 8);
      h.writeUInt8(r.zero ? KIND_ZERO : KIND_DATA, 12);
      parts.push(h);
      if (!r.zero) parts.push(r.digests!);
    }
    return Buffer.concat(parts);
  }

  /** Every field is checked: the file comes from an agent, or from a repository disk that may be damaged. */
  static decode(data: Buffer): BlockDigests {
    if (data.length < HEADER_BYTES || !data.subarray(0, 8).equals(MAGIC)) throw new DigestFormatError('wrong magic or too short');
    if (data.readUInt32LE(8) !== DIGEST_BLOCK_SIZE) throw new DigestFormatError(`block size ${data.readUInt32LE(8)} is not ${DIGEST_BLOCK_SIZE}`);
    if (data.readUInt8(12) !== ALGORITHM_SHA256 || data.readUInt8(13) !== DIGEST_LENGTH) throw new DigestFormatError('unknown digest algorithm');
    const virtualSize = Number(data.readBigUInt64LE(16));
    if (!Number.isSafeInteger(virtualSize) || virtualSize <= 0) throw new DigestFormatError(`bad virtual size ${virtualSize}`);
    const totalBlocks = Math.ceil(virtualSize / DIGEST_BLOCK_SIZE);
    const runCount = data.readUInt32LE(24);
    const runs: DigestRun[] = [];
    let pos = HEADER_BYTES;
    let end = 0;
    for (let i = 0; i < runCount; i++) {
      if (pos + RUN_HEADER_BYTES > data.length) throw new DigestFormatError('truncated');
      const first = Number(data.readBigUInt64LE(pos));
      const count = data.readUInt32LE(pos + 8);
      const kind = data.readUInt8(pos + 12);
      pos += RUN_HEADER_BYTES;
      if (count === 0 || first < end || first + count > totalBlocks) throw new DigestFormatError(`run ${i} (${first}+${count}) is out of order or beyond the disk`);
      if (kind !== KIND_DATA && kind !== KIND_ZERO) throw new DigestFormatError(`run ${i} has unknown kind ${kind}`);
      let digests: Buffer | null = null;
      if (kind === KIND_DATA) {
        if (pos + count * DIGEST_LENGTH > data.length) throw new DigestFormatError('truncated');
        digests = Buffer.from(data.subarray(pos, pos + count * DIGEST_LENGTH));
        pos += count * DIGEST_LENGTH;
      }
      runs.push({ first, count, zero: kind === KIND_ZERO, digests });
      end = first + count;
    }
    if (pos !== data.length) throw new DigestFormatError(`${data.length - pos} bytes after the last run`);
    return new BlockDigests(virtualSize, runs);
  }
}

function runBytes(r: DigestRun, virtualSize: number): number {
  return Math.min((r.first + r.count) * DIGEST_BLOCK_SIZE, virtualSize) - r.first * DIGEST_BLOCK_SIZE;
}

function slice(r: DigestRun, from: number, to: number): DigestRun {
  return { first: from, count: to - from, zero: r.zero, digests: r.zero ? null : r.digests!.subarray((from - r.first) * DIGEST_LENGTH, (to - r.first) * DIGEST_LENGTH) };
}

/** `runs` without the blocks of `cover`; both sorted and disjoint. */
function subtract(runs: readonly DigestRun[], cover: readonly { first: number; count: number }[]): DigestRun[] {
  const sorted = [...cover].sort((a, b) => a.first - b.first);
  const out: DigestRun[] = [];
  let j = 0;
  for (const r of runs) {
    let pos = r.first;
    const end = r.first + r.count;
    while (j < sorted.length && sorted[j].first + sorted[j].count <= pos) j++;
    for (let k = j; pos < end && k < sorted.length && sorted[k].first < end; k++) {
      const c = sorted[k];
      if (c.first > pos) out.push(slice(r, pos, c.first));
      pos = Math.max(pos, c.first + c.count);
    }
    if (pos < end) out.push(slice(r, pos, end));
  }
  return out;
}

/** Adjacent runs of one kind become one run (one copy of the digests per merged run). */
function coalesce(pieces: readonly DigestRun[]): DigestRun[] {
  const out: DigestRun[] = [];
  let group: DigestRun[] = [];
  const flush = () => {
    if (!group.length) return;
    const first = group[0];
    const count = group.reduce((n, r) => n + r.count, 0);
    out.push({ first: first.first, count, zero: first.zero, digests: first.zero ? null : group.length === 1 ? first.digests : Buffer.concat(group.map((r) => r.digests!)) });
    group = [];
  };
  for (const p of pieces) {
    const last = group.at(-1);
    if (last && (last.zero !== p.zero || last.first + last.count !== p.first)) flush();
    group.push(p);
  }
  flush();
  return out;
}

/**
 * Collects digests while a copy runs: one run per planned operation, filled in by whichever
 * request covers it, in any order. Operations must be aligned to DIGEST_BLOCK_SIZE.
 */
export class DigestRecorder {
  private readonly runs: DigestRun[] = [];

  constructor(readonly virtualSize: number) {}

  /** Registers an operation (in disk order) and returns the run its requests fill. */
  add(offset: number, length: number, zero: boolean): DigestRun {
    if (offset % DIGEST_BLOCK_SIZE !== 0 || (length % DIGEST_BLOCK_SIZE !== 0 && offset + length !== this.virtualSize)) {
      throw new RangeError(`digested operation ${offset}+${length} is not aligned to ${DIGEST_BLOCK_SIZE}`);
    }
    const first = offset / DIGEST_BLOCK_SIZE;
    const count = Math.ceil(length / DIGEST_BLOCK_SIZE);
    const run: DigestRun = { first, count, zero, digests: zero ? null : Buffer.alloc(count * DIGEST_LENGTH) };
    this.runs.push(run);
    return run;
  }

  /** Hashes `data` (read at `offset`, inside `run`) block by block into the run. */
  static hashInto(run: DigestRun, offset: number, data: Buffer): void {
    const firstBlock = offset / DIGEST_BLOCK_SIZE;
    for (let pos = 0, block = firstBlock; pos < data.length; pos += DIGEST_BLOCK_SIZE, block++) {
      const digest = createHash(DIGEST_ALGORITHM).update(data.subarray(pos, Math.min(pos + DIGEST_BLOCK_SIZE, data.length))).digest();
      digest.copy(run.digests!, (block - run.first) * DIGEST_LENGTH);
    }
  }

  result(): BlockDigests {
    return new BlockDigests(this.virtualSize, coalesce([...this.runs].sort((a, b) => a.first - b.first)));
  }
}
