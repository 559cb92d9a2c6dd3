import { closeSync, fstatSync, openSync, readSync } from 'node:fs';
import { setImmediate as yieldToEventLoop } from 'node:timers/promises';
import { isZeroChunk, ZERO_SCAN_BYTES } from './zero-scan';

/** What checkQcow2 found, counted as qemu-img check counts it. */
export interface Qcow2CheckResult {
  /** Clusters referenced more often than their stored refcount says, wrong flags, bad offsets. */
  corruptions: number;
  /** Clusters whose stored refcount is higher than their use: wasted space only. */
  leaks: number;
  /** Refcounts that could not be read (a refcount table entry that is not a cluster's offset). */
  checkErrors: number;
  /** One line per finding, in qemu's terms. */
  messages: string[];
}

const MAGIC = 0x514649fb;
const HEADER_V3_BYTES = 104;
const L1E_OFFSET_MASK = 0x00fffffffffffe00n;
const L1E_RESERVED_MASK = 0x7f000000000001ffn;
const L2E_OFFSET_MASK = 0x00fffffffffffe00n;
const L2E_STD_RESERVED_MASK = 0x3f000000000001fen;
const REFT_OFFSET_MASK = 0xfffffffffffffe00n;
const REFT_RESERVED_MASK = 0x1ffn;
const OFLAG_COPIED = 1n << 63n;
const OFLAG_COMPRESSED = 1n << 62n;
/** The incompatible feature bits this checker understands: none (dirty, corrupt, external data, compression type, extended L2 all defer to qemu-img). */
const KNOWN_INCOMPATIBLE = 0n;
const COMPATIBLE_LAZY_REFCOUNTS = 1n;
const AUTOCLEAR_BITMAPS = 1n;
/** Beyond this many clusters (8 bytes of counts each) the file is left to qemu-img. */
const MAX_CLUSTERS = 1 << 24;
const UNREADABLE = -1;
const YIELD_BYTES = 1 << 20;

class Unsupported extends Error {}

/**
 * `qemu-img check` of one plain qcow2 file, done in this process: the refcounts every cluster should have
 * (header, L1 and L2 tables, data clusters, refcount table and blocks) against the refcounts stored, and the
 * COPIED flags against the stored refcounts, as qemu's qcow2_check_refcounts does. A verify checks every file
 * of a chain, and a qemu-img process costs ~8 ms of CPU before it reads a byte: 1.6 s of CPU for a chain of
 * 201 small incrementals (docs/benchmarks.md, chain), where reading their few tables takes milliseconds.
 *
 * Only the layout Sendense writes is checked here: qcow2 v3, 16-bit refcounts, no snapshots, no bitmaps,
 * no encryption, no external data file, no extended L2 entries, no compressed clusters, no lazy refcounts.
 * Anything else answers `null`, and the caller asks qemu-img.
 */
export async function checkQcow2(file: string): Promise<Qcow2CheckResult | null> {
  const fd = openSync(file, 'r');
  try {
    return await new Checker(fd, fstatSync(fd).size).run();
  } catch (error) {
    if (error instanceof Unsupported) return null;
    throw error;
  } finally {
    closeSync(fd);
  }
}

class Checker {
  private clusterBits = 0;
  private clusterSize = 0;
  private fileClusters = 0;
  /** 16-bit refcounts: a cluster of them. */
  private refcountsPerBlock = 0;
  /** Non-zero entries only, by index: a table is mostly zeros, and a BigInt per entry made a check of a small file cost milliseconds. */
  private refcountTable = new Map<number, bigint>();
  private refcountTableLength = 0;
  /** Refcounts computed from what references each cluster, indexed by cluster. */
  private computed = new Uint32Array(0);
  private readonly refcountBlockCache = new Map<number, Buffer | 'empty' | 'unreadable'>();
  private sinceYield = 0;
  private scratch = Buffer.alloc(0);
  private readonly result: Qcow2CheckResult = { corruptions: 0, leaks: 0, checkErrors: 0, messages: [] };

  constructor(
    private readonly fd: number,
    private readonly fileBytes: number,
  ) {}

  async run(): Promise<Qcow2CheckResult> {
    if (this.fileBytes < HEADER_V3_BYTES) throw new Unsupported('too short');
    const header = await this.read(0, HEADER_V3_BYTES, true);
    if (header.readUInt32BE(0) !== MAGIC) throw new Unsupported('not qcow2');
    const version = header.readUInt32BE(4);
    this.clusterBits = header.readUInt32BE(20);
    const cryptMethod = header.readUInt32BE(32);
    const l1Size = header.readUInt32BE(36);
    const l1Offset = header.readBigUInt64BE(40);
    const refcountTableOffset = header.readBigUInt64BE(48);
    const refcountTableClusters = header.readUInt32BE(56);
    const snapshots = header.readUInt32BE(60);
    const incompatible = header.readBigUInt64BE(72);
    const compatible = header.readBigUInt64BE(80);
    const autoclear = header.readBigUInt64BE(88);
    const refcountOrder = header.readUInt32BE(96);
    if (version !== 3 || cryptMethod !== 0 || snapshots !== 0 || refcountOrder !== 4) throw new Unsupported('layout');
    if ((incompatible & ~KNOWN_INCOMPATIBLE) !== 0n || (compatible & COMPATIBLE_LAZY_REFCOUNTS) !== 0n || (autoclear & AUTOCLEAR_BITMAPS) !== 0n) throw new Unsupported('features');
    if (this.clusterBits < 9 || this.clusterBits > 21) throw new Unsupported('cluster size');
    this.clusterSize = 2 ** this.clusterBits;
    this.refcountsPerBlock = this.clusterSize / 2;
    this.fileClusters = Math.ceil(this.fileBytes / this.clusterSize);
    if (this.fileClusters > MAX_CLUSTERS) throw new Unsupported('size');
    this.computed = new Uint32Array(this.fileClusters);

    if (refcountTableClusters * this.clusterSize > 8 * MAX_CLUSTERS || l1Size > MAX_CLUSTERS) throw new Unsupported('tables');
    this.refcountTable = nonZeroEntries(await this.read(Number(refcountTableOffset), refcountTableClusters * this.clusterSize));
    this.refcountTableLength = (refcountTableClusters * this.clusterSize) / 8;

    this.use(0n, this.clusterSize);
    const l2Tables = await this.l1(l1Offset, l1Size);
    this.use(refcountTableOffset, refcountTableClusters * this.clusterSize);
    await this.refcountBlocks();
    const stored = await this.storedRefcounts();
    this.compare(stored);
    await this.copiedFlags(l1Offset, l2Tables, stored);
    return this.result;
  }

  /** Counts the L1 table, its L2 tables and their clusters; returns the L2 tables read, by L1 index. */
  private async l1(l1Offset: bigint, l1Size: number): Promise<Map<number, { entry: bigint; table: Map<number, bigint> }>> {
    const tables = new Map<number, { entry: bigint; table: Map<number, bigint> }>();
    if (l1Size === 0) return tables;
    this.use(l1Offset, l1Size * 8);
    for (const [i, l1Entry] of nonZeroEntries(await this.read(Number(l1Offset), l1Size * 8))) {
      const l2Offset = l1Entry & L1E_OFFSET_MASK;
      if (l2Offset === 0n) continue;
      if (l1Entry & L1E_RESERVED_MASK) this.corrupt(`ERROR found L1 entry with reserved bits set: ${hex(l1Entry)}`);
      this.use(l2Offset, this.clusterSize);
      if (l2Offset % BigInt(this.clusterSize) !== 0n) this.corrupt(`ERROR l2_offset=${hex(l2Offset)}: Table is not cluster aligned; L1 entry corrupted`);
      const l2 = nonZeroEntries(await this.read(Number(l2Offset), this.clusterSize));
      tables.set(i, { entry: l1Entry, table: l2 });
      for (const entry of l2.values()) {
        if (entry & OFLAG_COMPRESSED) throw new Unsupported('compressed cluster');
        const offset = entry & L2E_OFFSET_MASK;
        if (entry & L2E_STD_RESERVED_MASK) this.corrupt(`ERROR found L2 entry with reserved bits set: ${hex(entry)}`);
        if (offset === 0n) continue;
        // still counted, as qemu counts it: the cluster after it is then referenced twice
        if (offset % BigInt(this.clusterSize) !== 0n) this.corrupt(`ERROR offset=${hex(offset)}: Data cluster is not properly aligned; L2 entry corrupted.`);
        this.use(offset, this.clusterSize);
      }
    }
    return tables;
  }

  private async refcountBlocks(): Promise<void> {
    for (const [i, entry] of this.refcountTable) {
      const offset = entry & REFT_OFFSET_MASK;
      if (entry & REFT_RESERVED_MASK) {
        this.corrupt(`ERROR refcount table entry ${i} has reserved bits set`);
        continue;
      }
      if (offset % BigInt(this.clusterSize) !== 0n) {
        this.corrupt(`ERROR refcount block ${i} is not cluster aligned; refcount table entry corrupted`);
        continue;
      }
      const cluster = Number(offset >> BigInt(this.clusterBits));
      if (cluster >= this.fileClusters) {
        this.corrupt(`ERROR refcount block ${i} is outside image`);
        continue;
      }
      if (offset === 0n) continue;
      this.use(offset, this.clusterSize);
      if (this.computed[cluster] !== 1) this.corrupt(`ERROR refcount block ${i} refcount=${this.computed[cluster]}`);
    }
  }

  /** The refcount stored for each cluster the file has or something references; UNREADABLE where its refcount block cannot be read. */
  private async storedRefcounts(): Promise<Int32Array> {
    const stored = new Int32Array(this.computed.length);
    for (let first = 0; first < stored.length; first += this.refcountsPerBlock) {
      // reads the part of the block this file's clusters use once; the rest of it is then at hand
      await this.storedRefcount(first, Math.min(this.refcountsPerBlock, stored.length - first));
      for (let cluster = first; cluster < Math.min(first + this.refcountsPerBlock, stored.length); cluster++) stored[cluster] = this.cachedRefcount(cluster);
    }
    return stored;
  }

  /**
   * As qemu's qcow2_get_refcount: 0 beyond the refcount table or under an empty entry; UNREADABLE under an entry that
   * is not a cluster's offset. Reads the block's first `entries` refcounts at least: a small file uses a few of the
   * thousands a block holds, and reading all of them for every file of a long chain cost more than the rest of its check.
   */
  private async storedRefcount(cluster: number, entries = this.refcountsPerBlock): Promise<number> {
    const index = Math.floor(cluster / this.refcountsPerBlock);
    if (index >= this.refcountTableLength) return 0;
    let block = this.refcountBlockCache.get(index);
    const bytes = 2 * Math.max(entries, (cluster % this.refcountsPerBlock) + 1);
    if (block === undefined || (block instanceof Buffer && block.length < bytes)) {
      const entry = this.refcountTable.get(index) ?? 0n;
      const offset = entry & REFT_OFFSET_MASK;
      block = offset === 0n ? 'empty' : (entry & REFT_RESERVED_MASK) === 0n && offset % BigInt(this.clusterSize) === 0n ? await this.read(Number(offset), bytes, true) : 'unreadable';
      this.refcountBlockCache.set(index, block);
    }
    return this.cachedRefcount(cluster);
  }

  /** storedRefcount of a cluster whose refcount block is already read. */
  private cachedRefcount(cluster: number): number {
    const block = this.refcountBlockCache.get(Math.floor(cluster / this.refcountsPerBlock));
    if (block === undefined || block === 'empty') return 0;
    if (block === 'unreadable') return UNREADABLE;
    return block.readUInt16BE((cluster % this.refcountsPerBlock) * 2);
  }

  private compare(stored: Int32Array): void {
    for (let cluster = 0; cluster < this.computed.length; cluster++) {
      const has = stored[cluster];
      const should = this.computed[cluster];
      if (has === UNREADABLE) {
        this.error(`ERROR: Can't get refcount for cluster ${cluster}: its refcount block is unreadable`);
        continue;
      }
      if (has === should) continue;
      if (has < should) this.corrupt(`ERROR cluster ${cluster} refcount=${has} reference=${should}`);
      else {
        this.result.leaks++;
        this.result.messages.push(`Leaked cluster ${cluster} refcount=${has} reference=${should}`);
      }
    }
  }

  /** qemu sets COPIED exactly where a cluster's refcount is 1 (it may be written in place). */
  private async copiedFlags(l1Offset: bigint, l2Tables: Map<number, { entry: bigint; table: Map<number, bigint> }>, stored: Int32Array): Promise<void> {
    const refcountOf = async (offset: bigint) => {
      const cluster = Number(offset >> BigInt(this.clusterBits));
      const refcount = cluster < stored.length ? stored[cluster] : await this.storedRefcount(cluster);
      return refcount === UNREADABLE ? null : refcount;
    };
    for (const [index, { entry, table }] of l2Tables) {
      const l2Offset = entry & L1E_OFFSET_MASK;
      const refcount = await refcountOf(l2Offset);
      if (refcount === null) continue;
      if ((refcount === 1) !== ((entry & OFLAG_COPIED) !== 0n)) this.corrupt(`ERROR OFLAG_COPIED L2 cluster: l1_index=${index} l1_entry=${hex(entry)} refcount=${refcount} (L1 at ${hex(l1Offset)})`);
      for (const l2Entry of table.values()) {
        const offset = l2Entry & L2E_OFFSET_MASK;
        if (offset === 0n) continue;
        const dataRefcount = await refcountOf(offset);
        if (dataRefcount === null) continue;
        if ((dataRefcount === 1) !== ((l2Entry & OFLAG_COPIED) !== 0n)) this.corrupt(`ERROR OFLAG_COPIED data cluster: l2_entry=${hex(l2Entry)} refcount=${dataRefcount}`);
      }
    }
  }

  /**
   * One more reference to every cluster of [offset, offset + bytes). Like qemu, a region reaching a cluster or more
   * beyond the end of the file is a corruption and not counted; less than that may be the file's half-written last cluster.
   */
  private use(offset: bigint, bytes: number): void {
    if (bytes <= 0) return;
    if (offset + BigInt(bytes) - BigInt(this.fileBytes) >= BigInt(this.clusterSize)) {
      this.corrupt(`ERROR: counting reference for region exceeding the end of the file by one cluster or more: offset 0x${hex(offset)} size 0x${bytes.toString(16)}`);
      return;
    }
    const first = Number(offset >> BigInt(this.clusterBits));
    const last = Number((offset + BigInt(bytes) - 1n) >> BigInt(this.clusterBits));
    if (last >= this.computed.length) {
      const grown = new Uint32Array(last + 1);
      grown.set(this.computed);
      this.computed = grown;
    }
    for (let cluster = first; cluster <= last; cluster++) this.computed[cluster]++;
  }

  /**
   * As qemu reads a file: past its end, zeros (a table there is reported where it is counted, by use()). Read
   * synchronously: the few tables of a small file cost more in hand-offs to libuv's threads (~0.2 ms each) than
   * in reading; the event loop gets a turn after every YIELD_BYTES, so a large image does not hold it. Unless
   * `keep`, into a buffer the next read reuses: a table is turned into its entries before the next one is read,
   * and a fresh zeroed buffer for each cost as much as reading it.
   */
  private async read(offset: number, bytes: number, keep = false): Promise<Buffer> {
    if (!keep && this.scratch.length < bytes) this.scratch = Buffer.allocUnsafe(bytes);
    const buffer = keep ? Buffer.allocUnsafe(bytes) : this.scratch.subarray(0, bytes);
    let done = 0;
    if (Number.isSafeInteger(offset) && offset < this.fileBytes) done = readSync(this.fd, buffer, 0, Math.min(bytes, this.fileBytes - offset), offset);
    buffer.fill(0, done);
    if ((this.sinceYield += bytes) >= YIELD_BYTES) {
      this.sinceYield = 0;
      await yieldToEventLoop();
    }
    return buffer;
  }

  private corrupt(message: string): void {
    this.result.corruptions++;
    this.result.messages.push(message);
  }

  private error(message: string): void {
    this.result.checkErrors++;
    this.result.messages.push(message);
  }
}

/** raw comes from read(): at the start of its buffer (offset 0), so a word view of it is aligned; zero needs no byte swap. */
function nonZeroEntries(raw: Buffer): Map<number, bigint> {
  const words = new Uint32Array(raw.buffer, raw.byteOffset, raw.length / 4);
  const out = new Map<number, bigint>();
  for (let chunk = 0; chunk < raw.length; chunk += ZERO_SCAN_BYTES) {
    const bytes = Math.min(ZERO_SCAN_BYTES, raw.length - chunk);
    if (isZeroChunk(raw, chunk, bytes)) continue;
    for (let i = chunk / 4; i < (chunk + bytes) / 4; i += 2) if (words[i] !== 0 || words[i + 1] !== 0) out.set(i / 2, raw.readBigUInt64BE(i * 4));
  }
  return out;
}

function hex(value: bigint): string {
  return value.toString(16);
}
