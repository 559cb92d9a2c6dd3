import { closeSync, fstatSync, openSync, read, readSync } from 'node:fs';
import { dirname, resolve } from 'node:path';
import { promisify } from 'node:util';
import { parseQcow2Header } from '../../qemu/qcow2-header';
import { isZeroChunk, ZERO_SCAN_BYTES } from './zero-scan';

/** Reads `length` bytes of `fd` at `position` into `buffer` at `at`, zeros past the file's end. */
export type PieceReader = (fd: number, buffer: Buffer, at: number, length: number, position: number) => Promise<void>;

/**
 * A qcow2 chain as the newest file of it reads, resolved once into runs of the virtual disk, each either zeros or
 * a range of the one file that holds it. qemu walks the tables of every file above the one holding a block, for
 * every read and again for every file when it opens the chain: the newest of 201 small incrementals took qemu-nbd
 * 12 times as long to open as the newest of 2, and nbdcopy 7 times as long to read (docs/benchmarks.md, chain).
 * Resolved here, a read costs the same at any depth.
 *
 * Only the layout Sendense writes is resolved: qcow2 v3 files with no incompatible feature (no external data
 * file, no extended L2 entries, no compression type, not dirty, not marked corrupt), no encryption, no compressed
 * cluster, one cluster size, every backing file named with its format qcow2, and every file shorter than the top
 * one ending on a cluster boundary. Anything else answers null, and the caller reads through qemu.
 */
export class Qcow2ChainView {
  private constructor(
    /** The chain's files, the newest first. */
    readonly files: readonly string[],
    /** The newest file's virtual size: what a read of the chain sees. */
    readonly size: number,
    /** Open for as long as the view: a merge that renames or removes a file of the chain meanwhile does not change what it reads. */
    private readonly fds: number[],
    private readonly runs: Runs,
    private readonly readPiece: PieceReader,
  ) {}

  /** The view of `file` with its backing chain, or null when a file of it has a layout this does not resolve. */
  // Synchronous, as the check reads tables (qcow2-check.ts): a file's open and few small tables cost less than the
  // hand-offs to libuv's threads that asynchronous calls take, and a chain of 201 files waited for 800 of them.
  static async open(file: string, options: { reader?: PieceReader } = {}): Promise<Qcow2ChainView | null> {
    const fds: number[] = [];
    try {
      const layers: Layer[] = [];
      const seen = new Set<string>();
      for (let next: string | null = resolve(file); next; ) {
        if (seen.size >= MAX_DEPTH) return closeAll(fds, null);
        fds.push(openSync(next, 'r'));
        // the file itself, however it is named: one fstat, where resolving its path took one lstat per directory
        const { dev, ino } = fstatSync(fds.at(-1)!);
        if (seen.has(`${dev}:${ino}`)) throw new Error(`${file}: its backing chain loops back to ${next}`);
        seen.add(`${dev}:${ino}`);
        const layer = readLayer(fds.at(-1)!, next);
        if (!layer) return closeAll(fds, null);
        layers.push(layer);
        next = layer.backing ? resolve(dirname(next), layer.backing) : null;
      }
      const runs = resolveRuns(fds, layers);
      if (!runs) return closeAll(fds, null);
      return new Qcow2ChainView(layers.map((l) => l.file), layers[0].size, fds, runs, options.reader ?? readFully);
    } catch (error) {
      closeAll(fds, undefined);
      throw error;
    }
  }

  /** How many runs the view has: zeros and ranges of files. */
  get runCount(): number {
    return this.runs.count;
  }

  /** Bytes [offset, offset + length) of the view into `into` (or a new buffer), as qemu reads them. */
  async read(offset: number, length: number, into?: Buffer): Promise<Buffer> {
    if (!Number.isSafeInteger(offset) || !Number.isSafeInteger(length) || offset < 0 || length < 0 || offset + length > this.size) {
      throw new RangeError(`read of ${length} bytes at ${offset} is outside the image (${this.size} bytes)`);
    }
    const buffer = into ? into.subarray(0, length) : Buffer.allocUnsafe(length);
    if (buffer.length < length) throw new RangeError(`a buffer of ${into!.length} bytes cannot hold ${length}`);
    const reads: Promise<void>[] = [];
    const { starts, lengths, sources, hosts } = this.runs;
    for (let i = this.runs.find(offset), at = offset; at < offset + length; i++) {
      const n = Math.min(starts[i] + lengths[i], offset + length) - at;
      const pos = at - offset;
      if (sources[i] === ZERO) buffer.fill(0, pos, pos + n);
      else reads.push(this.readPiece(this.fds[sources[i]], buffer, pos, n, hosts[i] + (at - starts[i])));
      at += n;
    }
    await Promise.all(reads);
    return buffer;
  }

  async close(): Promise<void> {
    closeAll(this.fds.splice(0), undefined);
  }
}

/** qemu opens backing chains far deeper than this, but no chain Sendense keeps comes near it. */
const MAX_DEPTH = 4096;
/** Beyond this many runs the view would cost more memory than qemu's own tables: read through qemu instead. */
const MAX_RUNS = 1 << 22;
const ZERO = -1;
const L1E_OFFSET_MASK = 0x00fffffffffffe00n;
const L1E_RESERVED_MASK = 0x7f000000000001ffn;
const L2E_OFFSET_MASK = 0x00fffffffffffe00n;
const L2E_COMPRESSED = 1n << 62n;
const L2E_RESERVED_MASK = 0x3f000000000001fen;
const L2E_ZERO = 1n;

interface Layer {
  file: string;
  size: number;
  clusterBits: number;
  backing: string | null;
  /** L2 table offsets by L1 index (non-zero entries only). */
  l2: Map<number, number>;
}

/** The header and L1 table of one file, or null for a layout the view does not resolve. */
function readLayer(fd: number, file: string): Layer | null {
  const header = parseQcow2Header(fd);
  if (!header || header.cryptMethod !== 0 || header.incompatible !== 0n) return null;
  const { clusterBits, virtualSize: size, l1Size, l1Offset, backingFilename: backing } = header;
  if (clusterBits < 9 || clusterBits > 21 || !Number.isSafeInteger(size)) return null;
  if (backing !== null && header.backingFormat !== 'qcow2') return null;
  const clusterSize = 2 ** clusterBits;
  const entriesPerL2 = clusterSize / 8;
  if (l1Size < Math.ceil(size / clusterSize / entriesPerL2) || l1Size > 1 << 25) return null;
  const l1 = readAt(fd, l1Offset, l1Size * 8);
  const l2 = new Map<number, number>();
  for (let i = 0; i < l1Size; i++) {
    if (l1.readUInt32BE(i * 8) === 0 && l1.readUInt32BE(i * 8 + 4) === 0) continue;
    const entry = l1.readBigUInt64BE(i * 8);
    if (entry & L1E_RESERVED_MASK) return null;
    const offset = Number(entry & L1E_OFFSET_MASK);
    if (offset % clusterSize !== 0) return null;
    if (offset) l2.set(i, offset);
  }
  return { file, size, clusterBits, backing, l2 };
}

/** Runs of the view, sorted by start and covering [0, size) without gaps. */
class Runs {
  count = 0;
  starts = new Float64Array(64);
  lengths = new Float64Array(64);
  hosts = new Float64Array(64);
  sources = new Int32Array(64);

  /** Appends a run, or lengthens the last one when this continues it. */
  add(start: number, length: number, source: number, host: number): boolean {
    const last = this.count - 1;
    if (last >= 0 && this.sources[last] === source && (source === ZERO || this.hosts[last] + this.lengths[last] === host)) {
      this.lengths[last] += length;
      return true;
    }
    if (this.count === MAX_RUNS) return false;
    if (this.count === this.starts.length) this.grow();
    this.starts[this.count] = start;
    this.lengths[this.count] = length;
    this.hosts[this.count] = host;
    this.sources[this.count] = source;
    this.count++;
    return true;
  }

  /** The index of the run holding `offset`. */
  find(offset: number): number {
    let low = 0;
    let high = this.count - 1;
    while (low < high) {
      const mid = (low + high + 1) >> 1;
      if (this.starts[mid] <= offset) low = mid;
      else high = mid - 1;
    }
    return low;
  }

  private grow(): void {
    const grown = (a: Float64Array) => {
      const b = new Float64Array(a.length * 2);
      b.set(a);
      return b;
    };
    this.starts = grown(this.starts);
    this.lengths = grown(this.lengths);
    this.hosts = grown(this.hosts);
    const sources = new Int32Array(this.sources.length * 2);
    sources.set(this.sources);
    this.sources = sources;
  }
}

/**
 * Each cluster of the top file resolved to the first file, from the top down, whose L2 entry allocates it (data,
 * or reads-as-zero), as qemu resolves it; a cluster no file allocates, or that lies beyond the end of a file it
 * reads through, reads as zeros. One L2 table's worth of clusters at a time, so memory does not grow with the disk.
 */
function resolveRuns(fds: number[], layers: Layer[]): Runs | null {
  const clusterBits = layers[0].clusterBits;
  if (layers.some((l) => l.clusterBits !== clusterBits)) return null;
  const clusterSize = 2 ** clusterBits;
  const size = layers[0].size;
  // qemu reads zeros for what lies beyond the end of a backing file; a file ending inside a cluster would need runs finer than clusters
  let limit = size;
  const limits = layers.map((layer, i) => (i === 0 ? size : (limit = Math.min(limit, layer.size))));
  if (layers.some((layer, i) => i > 0 && layer.size < size && layer.size % clusterSize !== 0)) return null;
  const clusterLimits = limits.map((l) => Math.ceil(l / clusterSize));

  const perTable = clusterSize / 8;
  const owner = new Int32Array(perTable);
  const host = new Float64Array(perTable);
  const table = Buffer.allocUnsafe(clusterSize);
  const words = new Uint32Array(table.buffer, table.byteOffset, clusterSize / 4);
  const runs = new Runs();
  const clusters = Math.ceil(size / clusterSize);
  for (let index = 0; index * perTable < clusters; index++) {
    const first = index * perTable;
    const count = Math.min(perTable, clusters - first);
    owner.fill(UNRESOLVED);
    let unresolved = count;
    for (let i = 0; i < layers.length && unresolved > 0; i++) {
      // clusters beyond this file's end (and so beyond every file it reads through) read as zeros
      for (let j = Math.max(0, clusterLimits[i] - first); j < count; j++) {
        if (owner[j] === UNRESOLVED) {
          owner[j] = ZERO;
          unresolved--;
        }
      }
      const l2Offset = layers[i].l2.get(index);
      if (l2Offset === undefined) continue;
      readInto(fds[i], table, l2Offset);
      for (let j = 0; j < count; j++) {
        if (j % ENTRIES_PER_SCAN === 0 && isZeroChunk(table, j * 8, Math.min(ZERO_SCAN_BYTES, (count - j) * 8))) {
          j += ENTRIES_PER_SCAN - 1;
          continue;
        }
        if (owner[j] !== UNRESOLVED || (words[2 * j] === 0 && words[2 * j + 1] === 0)) continue;
        const entry = table.readBigUInt64BE(j * 8);
        if (entry & (L2E_COMPRESSED | L2E_RESERVED_MASK)) return null;
        const offset = entry & L2E_OFFSET_MASK;
        if (entry & L2E_ZERO) owner[j] = ZERO;
        else if (offset === 0n) continue;
        else {
          if (Number(offset) % clusterSize !== 0) return null;
          owner[j] = i;
          host[j] = Number(offset);
        }
        unresolved--;
      }
    }
    for (let j = 0; j < count; j++) {
      const start = (first + j) * clusterSize;
      const source = owner[j] === UNRESOLVED ? ZERO : owner[j];
      if (!runs.add(start, Math.min(clusterSize, size - start), source, source === ZERO ? 0 : host[j])) return null;
    }
  }
  if (runs.count === 0) runs.add(0, 0, ZERO, 0);
  return runs;
}

const UNRESOLVED = -2;
const ENTRIES_PER_SCAN = ZERO_SCAN_BYTES / 8;

/** Tables are read synchronously: a chain's few small tables cost more in hand-offs to libuv's threads than in reading. */
function readAt(fd: number, offset: number, length: number): Buffer {
  const buffer = Buffer.alloc(length);
  readInto(fd, buffer, offset);
  return buffer;
}

/** As qemu reads a file: past its end, zeros. */
function readInto(fd: number, buffer: Buffer, offset: number): void {
  readRangeSync(fd, buffer, 0, buffer.length, offset);
}

function readRangeSync(fd: number, buffer: Buffer, at: number, length: number, position: number): void {
  let done = 0;
  while (done < length) {
    const n = readSync(fd, buffer, at + done, length - done, position + done);
    if (n === 0) break;
    done += n;
  }
  buffer.fill(0, at + done, at + length);
}

const readAsync = promisify(read);

/**
 * Reads on the calling thread, with no hand-off to libuv's threads: what a view serving a mount must do, since the
 * hub reads the mounted files through those threads, each waiting on the mount until the view has read, and a view
 * reading through the same threads could wait for ever once all of them wait. It holds the event loop for each
 * read; chain-export.ts serves only files on local filesystems this way.
 */
export const readPieceNow: PieceReader = async (fd, buffer, at, length, position) => readRangeSync(fd, buffer, at, length, position);

async function readFully(fd: number, buffer: Buffer, at: number, length: number, position: number): Promise<void> {
  let done = 0;
  while (done < length) {
    const { bytesRead } = await readAsync(fd, buffer, at + done, length - done, position + done);
    if (bytesRead === 0) break;
    done += bytesRead;
  }
  buffer.fill(0, at + done, at + length);
}

function closeAll<T>(fds: number[], result: T): T {
  for (const fd of fds) {
    try {
      closeSync(fd);
    } catch {
      // already closed: nothing to release
    }
  }
  return result;
}
