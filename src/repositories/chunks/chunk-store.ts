import { hash, randomBytes } from 'node:crypto';
import { promises as fs } from 'node:fs';
import { FileHandle } from 'node:fs/promises';
import { dirname, join } from 'node:path';
import type { DiskExtent, ReadableDisk, WritableDisk } from '../../nbd-protocol/nbd-server';
import { insideRoot } from '../qcow2/inside-root';
import { createFileAtomic, publishExclusive, readFileIfPresent, removeStaleTemps, tempPathFor } from '../qcow2/durable-fs';
import { CHUNK_SIZE, ChunkFormatError, deriveKeys, openChunk, openChunkPacked, openMeta, PackedChunk, sealChunkParts, sealMeta, StoreKeys, worthCompressing } from './chunk-format';
import type { ChunkWorkers } from './chunk-workers';
import { DigestIndex } from './digest-index';
import { ChunkLocation, decodePackIndex, decodePointIndex, encodePackIndex, encodePointIndex, PACK_ID, PackEntry, PointIndex } from './indexes';
import { MovedPack, packFilesOf, readMovedPack, readPackEntries } from './moved-packs';
import { PackFile } from './pack-file';

/** A pack is closed once it holds this much: big enough for few objects, small enough to rewrite cheaply when GC repacks. */
const PACK_LIMIT = 64 * 1024 * 1024;
/** vmId/pointId/diskId, each an id of the product's own: the only names a point index may have. */
const POINT_NAME = /^[A-Za-z0-9][A-Za-z0-9._-]{0,127}(\/[A-Za-z0-9][A-Za-z0-9._-]{0,127}){2}$/;
const ZEROS = Buffer.alloc(CHUNK_SIZE);

/** A chunk's record: one buffer (from a worker thread), or the pieces it is written from (sealed on this thread). */
type SealedRecord = Buffer | readonly Buffer[];

const recordLength = (record: SealedRecord): number => (Buffer.isBuffer(record) ? record.length : record.reduce((n, p) => n + p.length, 0));
const wholeRecord = (record: SealedRecord): Buffer => (Buffer.isBuffer(record) ? record : Buffer.concat(record));

interface OpenPack {
  packId: string;
  tmp: string;
  file: PackFile;
  size: number;
  entries: PackEntry[];
  /** Records not yet in the file (entries from `firstPending` on), written together once WRITE_BATCH is reached. */
  pending: SealedRecord[];
  firstPending: number;
  pendingBytes: number;
}

/** Records are written to their pack in batches this large: one system call, not one per 64 KiB chunk. */
const WRITE_BATCH = 4 * 1024 * 1024;

export interface ChunkStoreOptions {
  /** The repository key (≥ 32 bytes) of an encrypted store; null for a plain one. */
  key: Buffer | null;
  /** zstd level of new chunks. */
  level?: number;
  /**
   * Threads that seal new chunks and open stored ones (chunk-nbd's, whose main thread runs TLS and NBD); without,
   * that is done on the calling thread. The caller closes them, after the store's last put and read.
   */
  workers?: ChunkWorkers;
}

export interface ChunkStoreStats {
  /** Chunks stored, and their plaintext and stored bytes. */
  chunks: number;
  plainBytes: number;
  storedBytes: number;
}

/**
 * A repository's chunk store (docs/design/storage.md): chunks in packs written once, a point as an index of its
 * disk. Several processes (of one hub or several) may write a store at once, each deduplicating against the packs
 * it read and its own, so two of them may store the same chunk twice, in two packs; readers may share it too.
 * Writers register first (store-lock.ts), so that no garbage collection (gc.ts) runs while they write.
 * What is committed survives a crash at any moment: a pack is published (synced, linked under its name) before its
 * index, its index before any point that names its chunks, and a point's index is published only whole. A pack
 * without an index, or a temp file of a dead writer, is litter a crash left; opening the store skips the first and
 * removes the second.
 */
export class ChunkStore {
  /** Every stored chunk's location by its digest: what a new block is deduplicated against. */
  private readonly known = new DigestIndex((at) => this.entryAt(at)?.digest);
  private readonly packs = new Map<string, PackEntry[]>();
  /** Packs a collection repacked, read where a point names them: where their live entries went. */
  private readonly moved = new Map<string, MovedPack>();
  /** Packs whose record of a repack the last listing of the store showed. */
  private readonly listedMoved = new Set<string>();
  /** Pack indexes read or being read, by pack id. */
  private readonly loading = new Map<string, Promise<void>>();
  private everything: Promise<void> | null = null;
  /** Every pack published before knowAll listed them is known: a block not in `known` is new to the store. */
  private allKnown = false;
  private open: OpenPack | null = null;
  /** Packs being published: their chunks are still theirs to read. */
  private readonly closing = new Map<string, OpenPack>();
  private appending: Promise<unknown> = Promise.resolve();
  /** Records being sealed by the workers, by digest (hex): a block put again meanwhile waits for the same record. */
  private readonly sealing = new Map<string, Promise<Buffer>>();
  readonly stats: ChunkStoreStats = { chunks: 0, plainBytes: 0, storedBytes: 0 };

  private constructor(
    readonly dir: string,
    private readonly keys: StoreKeys | null,
    private readonly level: number,
    private readonly workers: ChunkWorkers | null,
  ) {}

  /**
   * Reads one pack index, which a wrong key does not open: a reader loads those its point names (openPoint), a
   * writer those of its base at its first read or write (writePoint) and the rest when a block is new to it or its server asks
   * (prefetchIndexes), so that opening a store costs the same however many packs it holds.
   */
  static async open(dir: string, options: ChunkStoreOptions): Promise<ChunkStore> {
    const store = new ChunkStore(dir, options.key ? deriveKeys(options.key) : null, options.level ?? 3, options.workers ?? null);
    await fs.mkdir(join(dir, 'packs'), { recursive: true, mode: 0o750 });
    await fs.mkdir(join(dir, 'points'), { recursive: true, mode: 0o750 });
    await removeStaleTemps(join(dir, 'packs'));
    const first = (await store.packIds())[0];
    if (first) await store.loadPack(first);
    return store;
  }

  /** The published packs, by the names of their indexes, in order; the packs listed with a record of a repack are noted. */
  private async packIds(): Promise<string[]> {
    const ids: string[] = [];
    for (const name of await fs.readdir(join(this.dir, 'packs'))) {
      const [id, kind] = name.split('.');
      if (!PACK_ID.test(id)) continue;
      if (kind === 'idx') ids.push(id);
      else if (kind === 'moved') this.listedMoved.add(id);
    }
    return ids.sort();
  }

  /**
   * A published pack's index, read once; a pack gone (removed by a garbage collection) is left unknown. A pack a
   * collection repacked is known by its record of where its entries went, and the pack they went to is read in turn.
   * A record the store's listing showed is read first, since a repack killed before it removed the old index leaves
   * both (a writer, which lists the store as it opens, must not deduplicate against an entry the repack dropped);
   * one made since the listing is found once the old index is gone.
   */
  private loadPack(packId: string, via: readonly string[] = []): Promise<void> {
    if (via.includes(packId)) return Promise.reject(new ChunkFormatError(`pack ${packId} was moved in a circle (${[...via, packId].join(' -> ')}): the store is damaged`));
    if (this.packs.has(packId) || this.moved.has(packId)) return Promise.resolve();
    let loading = this.loading.get(packId);
    if (!loading) {
      loading = (async () => {
        const metaKey = this.keys?.meta ?? null;
        const listed = this.listedMoved.has(packId) ? await readMovedPack(this.dir, packId, metaKey) : null;
        const bytes = listed ? null : await readFileIfPresent(this.packFile(packId, 'idx'));
        const moved = listed ?? (bytes ? null : await readMovedPack(this.dir, packId, metaKey));
        if (moved) {
          await this.loadPack(moved.to, [...via, packId]);
          this.moved.set(packId, moved);
          return;
        }
        if (bytes && !this.packs.has(packId)) this.remember(packId, decodePackIndex(openMeta(`pack ${packId}`, bytes, metaKey), `pack ${packId}`));
      })();
      this.loading.set(packId, loading);
    }
    return loading;
  }

  /**
   * Reads a pack's index again: a reader found its file gone, removed by a collection that repacked it since the
   * index was read, and reads its chunks where they went.
   */
  private async reloadPack(packId: string): Promise<void> {
    const entries = this.packs.get(packId);
    if (entries) this.known.forgetPack(packId, entries.map((e) => e.digest));
    this.packs.delete(packId);
    this.moved.delete(packId);
    this.loading.delete(packId);
    await this.loadPack(packId);
  }

  /** Where a chunk a point names is now, following its pack's repacks; null for an entry a repack dropped. */
  private located(at: ChunkLocation): ChunkLocation | null {
    for (let moved = this.moved.get(at.packId); moved; moved = this.moved.get(at.packId)) {
      const entry = moved.entries[at.entry] ?? -1;
      if (entry < 0) return null;
      at = { packId: moved.to, entry };
    }
    return at;
  }

  private async loadPacks(blocks: readonly (ChunkLocation | null)[]): Promise<void> {
    await Promise.all(namedPacks(blocks).map((packId) => this.loadPack(packId)));
  }

  /**
   * Every published pack's index (a chunk stored twice is deduplicated against the copy read first): what a block new
   * to the writer is checked against. Read once; a damaged index fails the put that needed it.
   */
  private knowAll(): Promise<void> {
    this.everything ??= (async () => {
      for (const packId of await this.packIds()) await this.loadPack(packId);
      this.allKnown = true;
    })();
    return this.everything;
  }

  private remember(packId: string, entries: PackEntry[]): void {
    this.packs.set(packId, entries);
    for (let entry = 0; entry < entries.length; entry++) this.known.add(entries[entry].digest, { packId, entry });
  }

  /** A chunk's entry: in a published pack this store read or wrote, or in the pack it is writing or publishing. */
  private entryAt(named: ChunkLocation): PackEntry | undefined {
    const at = this.moved.size ? this.located(named) : named;
    return at ? (this.packs.get(at.packId) ?? this.unpublished(at.packId)?.entries)?.[at.entry] : undefined;
  }

  /** The pack this store is writing, or one it is publishing: its chunks are still read from it. */
  private unpublished(packId: string): OpenPack | undefined {
    return this.open?.packId === packId ? this.open : this.closing.get(packId);
  }

  /**
   * Starts reading every pack's index, which the first block new to this store waits for: a writer's server calls it
   * once it serves, so that the reading overlaps the source's snapshot instead of delaying the export's start. A
   * failure is the first new block's to report.
   */
  prefetchIndexes(): void {
    this.knowAll().catch(() => undefined);
  }

  /** Whether a chunk is known to hold these bytes: one this store put, or one of the packs it read. */
  has(digest: Buffer): boolean {
    return this.known.has(digest);
  }

  /**
   * Stores a block (at most CHUNK_SIZE bytes) unless the store holds its content already; its location either way.
   * The digest is computed here, never taken from the sender: a chunk others will share is named by its own bytes.
   * `expected`, when given, is the digest the sender claimed, and a block that does not match it is refused.
   */
  put(data: Buffer, expected?: Buffer): Promise<ChunkLocation> {
    if (data.length === 0 || data.length > CHUNK_SIZE) return Promise.reject(new ChunkFormatError(`a chunk has 1 to ${CHUNK_SIZE} bytes, not ${data.length}`));
    const digest = hash('sha256', data, 'buffer');
    if (expected && !expected.equals(digest)) return Promise.reject(new ChunkFormatError(`a block sent as ${expected.toString('hex')} has the digest ${digest.toString('hex')}`));
    // a block not among those known yet waits for every pack's index: it may be stored already
    if (!this.allKnown && !this.known.has(digest)) return this.knowAll().then(() => this.store(digest, data));
    return this.store(digest, data);
  }

  private store(digest: Buffer, data: Buffer): Promise<ChunkLocation> {
    // judged once, and only for a block the store may not hold: whether zstd is to see it, and so where it is sealed
    const compressible = this.known.has(digest) ? undefined : worthCompressing(data);
    const sealed = compressible ? this.sealAhead(digest, data) : undefined;
    const result = this.appending.then(() => this.append(digest, data, sealed, compressible));
    this.appending = result.catch(() => undefined);
    if (sealed) {
      // once its turn is over the chunk is known (or its pack failed, and a later put seals it again)
      const forget = () => this.sealing.get(digest.toString('hex')) === sealed && this.sealing.delete(digest.toString('hex'));
      void this.appending.then(forget);
    }
    return result;
  }

  /**
   * With workers, a block the store does not hold yet and zstd is to see is sealed at once, while the blocks put before
   * it are appended in turn: puts seal in parallel, and still land in their pack in the order they were made. Whether
   * it is stored is decided when its turn comes, as without workers (a block put twice is stored once).
   */
  private sealAhead(digest: Buffer, data: Buffer): Promise<Buffer> | undefined {
    const hex = digest.toString('hex');
    if (!this.workers) return undefined;
    let sealed = this.sealing.get(hex);
    if (!sealed) {
      sealed = this.workers.seal(digest, data, this.keys?.data ?? null, this.level);
      // its put reads the failure; a put that finds the chunk stored by then never looks
      sealed.catch(() => undefined);
      this.sealing.set(hex, sealed);
    }
    return sealed;
  }

  private async append(digest: Buffer, data: Buffer, sealed: Promise<Buffer> | undefined, compressible: boolean | undefined): Promise<ChunkLocation> {
    const known = this.known.get(digest);
    if (known) return known;
    const record = await (sealed ?? this.seal(digest, data, compressible));
    if (this.open && this.open.size + recordLength(record) > PACK_LIMIT) await this.closePack();
    const pack = this.open ?? (this.open = await this.startPack());
    try {
      return await this.add(pack, digest, data, record);
    } catch (error) {
      await this.abandon(pack);
      throw error;
    }
  }

  /**
   * On the workers what zstd will work on; here what it would not (random, encrypted or compressed data): sealing
   * that is AES-GCM alone, cheaper than a batch's copies and messages to a thread and back.
   */
  private seal(digest: Buffer, data: Buffer, compressible = worthCompressing(data)): Promise<Buffer> | SealedRecord {
    return this.workers && compressible ? this.workers.seal(digest, data, this.keys?.data ?? null, this.level) : sealChunkParts(digest, data, this.keys?.data ?? null, this.level, compressible);
  }

  private async add(pack: OpenPack, digest: Buffer, data: Buffer, record: SealedRecord): Promise<ChunkLocation> {
    const entry = pack.entries.length;
    const length = recordLength(record);
    pack.pending.push(record);
    pack.pendingBytes += length;
    pack.entries.push({ digest, offset: pack.size, length });
    // deduplicated against at once; until the pack is published its chunks are read from memory or its temp file
    this.known.add(digest, { packId: pack.packId, entry });
    pack.size += length;
    this.stats.chunks++;
    this.stats.plainBytes += data.length;
    this.stats.storedBytes += length;
    if (pack.pendingBytes >= WRITE_BATCH) await this.writePending(pack);
    return { packId: pack.packId, entry };
  }

  private async writePending(pack: OpenPack): Promise<void> {
    if (!pack.pending.length) return;
    await pack.file.append(pack.pending.flat());
    pack.firstPending = pack.entries.length;
    pack.pending = [];
    pack.pendingBytes = 0;
  }

  private async startPack(): Promise<OpenPack> {
    const packId = randomBytes(8).toString('hex');
    const tmp = tempPathFor(this.packFile(packId, 'pack'));
    return { packId, tmp, file: await PackFile.create(tmp, 0o640), size: 0, entries: [], pending: [], firstPending: 0, pendingBytes: 0 };
  }

  private packFile(packId: string, kind: 'pack' | 'idx'): string {
    return join(this.dir, 'packs', `${packId}.${kind}`);
  }

  /**
   * Publishes the open pack and then its index: from here its chunks can be named by points. Chunks put meanwhile
   * go to a new pack; reads of this one find it under its temp name or, once linked, its own.
   */
  private async closePack(): Promise<void> {
    const pack = this.open;
    if (!pack) return;
    this.open = null;
    this.closing.set(pack.packId, pack);
    try {
      await this.writePending(pack);
      await pack.file.sync();
      await pack.file.close();
      await publishExclusive(pack.tmp, this.packFile(pack.packId, 'pack'));
      await createFileAtomic(this.packFile(pack.packId, 'idx'), sealMeta(`pack ${pack.packId}`, encodePackIndex(pack.entries), this.keys?.meta ?? null));
      this.packs.set(pack.packId, pack.entries);
    } catch (error) {
      await this.abandon(pack);
      throw error;
    } finally {
      this.closing.delete(pack.packId);
    }
  }

  /**
   * A pack that could not be written whole (a full disk, an I/O error) is forgotten: its chunks are no longer
   * deduplicated against, so no later point names a chunk that is not on disk, and a point that named one of them
   * is refused at commit (its pack is never published). Its files are litter for the next open or GC.
   */
  private async abandon(pack: OpenPack): Promise<void> {
    if (this.open === pack) this.open = null;
    this.known.forgetPack(pack.packId, pack.entries.map((e) => e.digest));
    await pack.file.close().catch(() => undefined);
    await fs.rm(pack.tmp, { force: true }).catch(() => undefined);
  }

  /**
   * Commits a point: the pack being written first, then the point's index, published once and never replaced.
   * `blocks` has one location per CHUNK_SIZE block of a disk of `size` bytes, null for zeros.
   */
  async commitPoint(name: string, size: number, blocks: (ChunkLocation | null)[], base: readonly (ChunkLocation | null)[] = []): Promise<void> {
    const file = this.pointFile(name);
    await this.flush();
    // a block still where its base point has it was checked when the base was committed, and its pack cannot have
    // gone since (no collection runs while a writer is registered): an incremental reads no index for what it kept
    const changed = blocks.filter((b, i) => b && b !== base[i]);
    await this.loadPacks(changed);
    for (const b of changed) if (b && !this.entryAt(b)) throw new ChunkFormatError(`point ${name} names a chunk this store does not hold (pack ${b.packId}, entry ${b.entry})`);
    const index = encodePointIndex({ size, chunkSize: CHUNK_SIZE, blocks });
    await fs.mkdir(dirname(file), { recursive: true, mode: 0o750 });
    await createFileAtomic(file, sealMeta(`point ${name}`, index, this.keys?.meta ?? null));
  }

  private pointFile(name: string): string {
    return pointFileOf(this.dir, name);
  }

  async readPoint(name: string): Promise<PointIndex> {
    return readPointFile(this.dir, name, this.keys?.meta ?? null);
  }

  /** A committed point's disk, read-only: what the hub's NBD server serves (src/nbd-protocol/nbd-server.ts). */
  async openPoint(name: string): Promise<ChunkPointView> {
    const index = await this.readPoint(name);
    await this.loadPacks(index.blocks);
    return new ChunkPointView(index, this.reader());
  }

  /**
   * A new point's disk, written through the hub's NBD server: it starts as `base` (the point it follows, or zeros),
   * and each write stores the blocks it completes. Nothing is a point until `commit`.
   */
  async writePoint(size: number, base: string | null): Promise<ChunkPointWriter> {
    const index = base ? await this.readPoint(base) : null;
    if (index && index.size > size) throw new ChunkFormatError(`point ${base} has ${index.size} bytes, the new one ${size}: a point follows one of its own size or larger`);
    const blocks = index ? [...index.blocks] : new Array<ChunkLocation | null>(Math.ceil(size / CHUNK_SIZE)).fill(null);
    if (index && size > index.size) await this.grow(blocks, index.size, size);
    // the base's pack indexes are read by its first read or write, not before the export serves: an incremental's
    // start does not grow with its disk (its server reads every pack index once it serves: prefetchIndexes)
    return new ChunkPointWriter(this, size, blocks, this.reader(), () => this.loadPacks(index?.blocks ?? []));
  }

  /**
   * A disk that grew since its base (an incremental after a resize, as a qcow2 overlay larger than its backing file):
   * the base's blocks, then zeros. The base's short last block becomes a whole block of the larger disk, so it is
   * stored again, its bytes then zeros: a block's chunk always holds the whole block.
   */
  private async grow(blocks: (ChunkLocation | null)[], from: number, to: number): Promise<void> {
    const last = blocks.length - 1;
    while (blocks.length < Math.ceil(to / CHUNK_SIZE)) blocks.push(null);
    const short = blocks[last];
    if (from % CHUNK_SIZE === 0 || !short) return;
    await this.loadPacks([short]);
    const whole = Buffer.alloc(Math.min(CHUNK_SIZE, to - last * CHUNK_SIZE));
    (await this.reader().read(short)).copy(whole);
    blocks[last] = await this.put(whole);
  }

  /** Reads chunks by location: published packs, and the pack being written. */
  reader(): ChunkReader {
    return new ChunkReader(
      (named) => {
        const at = this.moved.size ? this.located(named) : named;
        if (!at) throw new ChunkFormatError(`no chunk at pack ${named.packId}, entry ${named.entry} in this store: a repack found no point naming it`);
        const pack = this.unpublished(at.packId);
        const open = pack?.entries[at.entry];
        if (pack && open) return at.entry >= pack.firstPending ? { record: wholeRecord(pack.pending[at.entry - pack.firstPending]), entry: open } : { packId: at.packId, file: pack.tmp, published: this.packFile(at.packId, 'pack'), entry: open };
        const entry = this.packs.get(at.packId)?.[at.entry];
        if (!entry) throw new ChunkFormatError(`no chunk at pack ${at.packId}, entry ${at.entry} in this store`);
        return { packId: at.packId, file: this.packFile(at.packId, 'pack'), entry };
      },
      this.keys?.data ?? null,
      this.workers,
      (packId) => this.reloadPack(packId),
    );
  }

  /** Publishes what is being written (a backup that ends without a point still leaves its chunks for the next). */
  async flush(): Promise<void> {
    await this.appending;
    await this.closePack();
  }
}

function pointFileOf(dir: string, name: string): string {
  if (!POINT_NAME.test(name)) throw new ChunkFormatError(`a point is named vmId/pointId/diskId, not ${JSON.stringify(name)}`);
  return insideRoot(join(dir, 'points'), `${name}.idx`);
}

async function readPointFile(dir: string, name: string, metaKey: Buffer | null): Promise<PointIndex> {
  return decodePointIndex(openMeta(`point ${name}`, await fs.readFile(pointFileOf(dir, name)), metaKey), `point ${name}`);
}

/** A committed point's index alone, without opening its store. */
export function readPointIndex(dir: string, name: string, key: Buffer | null): Promise<PointIndex> {
  return readPointFile(dir, name, key ? deriveKeys(key).meta : null);
}

/**
 * The digest of each block of a committed point (null for a block of zeros), read from its index and the indexes of
 * the packs it names: what a full started from this point tells its agent it need not send.
 */
export async function readPointDigests(dir: string, name: string, key: Buffer | null): Promise<{ size: number; blocks: (Buffer | null)[] }> {
  const metaKey = key ? deriveKeys(key).meta : null;
  const index = await readPointFile(dir, name, metaKey);
  const packs = new Map<string, (PackEntry | undefined)[]>();
  for (const packId of namedPacks(index.blocks)) packs.set(packId, await readPackEntries(dir, packId, metaKey));
  const blocks = index.blocks.map((at) => {
    if (!at) return null;
    const entry = packs.get(at.packId)![at.entry];
    if (!entry) throw new ChunkFormatError(`point ${name} names entry ${at.entry} of pack ${at.packId}, which holds no such chunk`);
    return entry.digest;
  });
  return { size: index.size, blocks };
}

/** The files a committed point reads through: the packs its blocks are in, their indexes, and the records of their repacks. */
export async function readPointPackFiles(dir: string, name: string, key: Buffer | null): Promise<string[]> {
  const metaKey = key ? deriveKeys(key).meta : null;
  const index = await readPointFile(dir, name, metaKey);
  return (await Promise.all(namedPacks(index.blocks).map((packId) => packFilesOf(dir, packId, metaKey)))).flat();
}

/** The packs blocks name, each once; one pass, no array per block: a 100 GiB disk's point names 1.6 million blocks, at every export's start. */
function namedPacks(blocks: readonly (ChunkLocation | null)[]): string[] {
  const packIds = new Set<string>();
  for (const b of blocks) if (b) packIds.add(b.packId);
  return [...packIds];
}

/** A chunk's record in a pack file (`packId`: the pack that holds it, which a repack may have changed). */
type InPack = { packId: string; file: string; published?: string; entry: PackEntry };

/** A pack file that was published and is gone: a collection repacked its pack since its index was read. */
class PackGone extends Error {
  constructor(readonly packId: string) {
    super(`pack ${packId} is gone`);
  }
}

/** How often one read follows packs that were repacked under it before it gives up. */
const REPACKS_FOLLOWED = 8;

/** Opens chunks where a store says they are; pack files stay open until `close` (a file published meanwhile keeps its handle). */
export class ChunkReader {
  private readonly files = new Map<string, Promise<FileHandle>>();

  constructor(
    /** Where a chunk's record is: in a pack file, or still in memory (the pack being written). */
    private readonly where: (at: ChunkLocation) => InPack | { record: Buffer; entry: PackEntry },
    private readonly key: Buffer | null,
    private readonly workers: ChunkWorkers | null = null,
    /** Reads a pack's index again after its file was found gone. */
    private readonly reload: ((packId: string) => Promise<void>) | null = null,
  ) {}

  async read(at: ChunkLocation): Promise<Buffer> {
    return (await this.readMany([at]))[0];
  }

  /**
   * Chunks in the order given, read again where they went when a collection repacked a pack under the read (a restore
   * mount may read for hours; a collection does not wait for readers).
   */
  readMany(ats: readonly ChunkLocation[], into: readonly (Buffer | undefined)[] = []): Promise<Buffer[]> {
    return this.following(() => this.readOnce(ats, (entry, record, k) => this.open(entry, record, into[k])));
  }

  /**
   * Chunks in the order given as readMany reads them, opened but not decompressed (openChunkPacked), on the calling
   * thread: AES-GCM alone costs a fraction of what a batch's copies and messages to a worker thread would.
   */
  readPacked(ats: readonly ChunkLocation[]): Promise<PackedChunk[]> {
    return this.following(() => this.readOnce(ats, async (entry, record) => openChunkPacked(entry.digest, record, this.key)));
  }

  private async following<T>(read: () => Promise<T>): Promise<T> {
    for (let followed = 0; ; followed++) {
      try {
        return await read();
      } catch (error) {
        if (!(error instanceof PackGone) || !this.reload || followed >= REPACKS_FOLLOWED) throw error instanceof PackGone ? new ChunkFormatError(`pack ${error.packId} is gone from this store`) : error;
        this.files.delete(error.packId);
        await this.reload(error.packId);
      }
    }
  }

  /**
   * Chunks in the order given. Neighbours in one pack file (each record right after the one before, as a disk
   * written in order leaves them) are read with one pread: a 2 MiB read of a disk is a few system calls, not 32.
   * Each record is handed to `open` with its place in `ats`.
   */
  private async readOnce<T>(ats: readonly ChunkLocation[], open: (entry: PackEntry, record: Buffer, k: number) => Promise<T>): Promise<T[]> {
    const out = new Array<T>(ats.length);
    const wheres = ats.map((at) => this.where(at));
    const reads: Promise<void>[] = [];
    for (let k = 0; k < ats.length; ) {
      const where = wheres[k];
      const first = k;
      if ('record' in where) {
        reads.push(open(where.entry, where.record, first).then((data) => void (out[first] = data)));
        k++;
        continue;
      }
      let end = k + 1;
      for (; end < ats.length; end++) {
        const next = wheres[end];
        const previous = wheres[end - 1].entry;
        if ('record' in next || next.packId !== (where as InPack).packId || next.entry.offset !== previous.offset + previous.length) break;
      }
      const run = wheres.slice(k, end) as InPack[];
      reads.push(
        this.readRun(run).then(async (records) => {
          const opened = await Promise.all(records.map((record, j) => open(run[j].entry, record, first + j)));
          opened.forEach((data, j) => (out[first + j] = data));
        }),
      );
      k = end;
    }
    await Promise.all(reads);
    return out;
  }

  /** The records of a run of neighbouring entries of one pack, from one read. */
  private async readRun(run: readonly InPack[]): Promise<Buffer[]> {
    const { packId, file: path, published } = run[0];
    let file = this.files.get(packId);
    // a pack being published may have left its temp name for its own between the lookup and the open
    const opened = () =>
      fs
        .open(path, 'r')
        .catch((error: NodeJS.ErrnoException) => (error.code === 'ENOENT' && published ? fs.open(published, 'r') : Promise.reject(error)))
        .catch((error: NodeJS.ErrnoException) => Promise.reject(error.code === 'ENOENT' && !published ? new PackGone(packId) : error));
    if (!file) this.files.set(packId, (file = opened()));
    const start = run[0].entry.offset;
    const last = run[run.length - 1].entry;
    const bytes = Buffer.allocUnsafe(last.offset + last.length - start);
    const { bytesRead } = await (await file).read(bytes, 0, bytes.length, start);
    if (bytesRead !== bytes.length) throw new ChunkFormatError(`pack ${packId} ends inside chunk ${run.find((r) => r.entry.offset + r.entry.length > start + bytesRead)!.entry.digest.toString('hex')}`);
    return run.map(({ entry }) => bytes.subarray(entry.offset - start, entry.offset - start + entry.length));
  }

  private open(entry: PackEntry, record: Buffer, into: Buffer | undefined): Promise<Buffer> {
    if (this.workers) return this.workers.open(entry.digest, record, this.key, into);
    try {
      return Promise.resolve(openChunk(entry.digest, record, this.key, into));
    } catch (error) {
      return Promise.reject(error);
    }
  }

  async close(): Promise<void> {
    const files = [...this.files.values()];
    this.files.clear();
    for (const f of files) await (await f.catch(() => null))?.close();
  }
}

/**
 * Copies part of a disk whose blocks are given by `block` into `out`; a short block (the disk's last) reads as zeros
 * past its end. The blocks are fetched at once: their pack reads overlap on libuv's threads.
 */
async function readBlocks(offset: number, length: number, out: Buffer, block: (i: number) => Promise<Buffer>): Promise<void> {
  const pieces: { i: number; within: number; done: number; take: number }[] = [];
  for (let done = 0; done < length; ) {
    const at = offset + done;
    const i = Math.floor(at / CHUNK_SIZE);
    const within = at - i * CHUNK_SIZE;
    const take = Math.min(length - done, CHUNK_SIZE - within);
    pieces.push({ i, within, done, take });
    done += take;
  }
  const blocks = await Promise.all(pieces.map((p) => block(p.i)));
  pieces.forEach(({ within, done, take }, k) => {
    // a block opened straight into `out` is already in place: only a short plaintext (the disk's last block) leaves
    // bytes to clear
    const inPlace = blocks[k].buffer === out.buffer && blocks[k].byteOffset === out.byteOffset + done;
    const copied = inPlace ? Math.min(blocks[k].length, take) : blocks[k].copy(out, done, within, within + take);
    if (copied < take) out.fill(0, done + copied, done + take);
  });
}

/** The runs of zero blocks (no chunk) and data blocks across part of a disk, in order, neighbours of one kind merged. */
function blockRuns(blocks: readonly (ChunkLocation | null)[], offset: number, length: number): DiskExtent[] {
  const runs: DiskExtent[] = [];
  for (let at = offset, end = offset + length; at < end; ) {
    const i = Math.floor(at / CHUNK_SIZE);
    const next = Math.min((i + 1) * CHUNK_SIZE, end);
    const zero = !blocks[i];
    const last = runs[runs.length - 1];
    if (last?.zero === zero) last.length += next - at;
    else runs.push({ length: next - at, zero });
    at = next;
  }
  return runs;
}

function checkRange(offset: number, length: number, size: number): void {
  if (!Number.isSafeInteger(offset) || offset < 0 || length < 0 || offset + length > size) throw new RangeError(`${length} bytes at ${offset} are outside the disk (${size} bytes)`);
}

/**
 * A point's disk read through its index: zeros where it names none, a chunk's plaintext elsewhere. The last chunk
 * read is kept, so the small reads of a filesystem walk (nbdfuse asks for 4 KiB at a time) open each chunk once.
 */
/** A block of a disk as its chunk stores it: `body` is `length` bytes, or a zstd frame of them when `compressed`. */
export interface PackedBlock extends PackedChunk {
  offset: number;
  length: number;
}

export class ChunkPointView implements ReadableDisk {
  readonly size: number;
  private last: { block: number; data: Buffer } | null = null;

  constructor(
    private readonly index: PointIndex,
    private readonly chunks: ChunkReader,
  ) {
    this.size = index.size;
  }

  async read(offset: number, length: number, into?: Buffer): Promise<Buffer> {
    checkRange(offset, length, this.size);
    const out = into ?? Buffer.allocUnsafe(length);
    if (length === 0) return out;
    // taken before the await: a read answered meanwhile replaces this.last, and the block skipped here would be lost
    const kept = this.last;
    // the blocks of the read are fetched together, so that neighbours in a pack come from one pread; a block the read
    // covers whole is opened straight into `out`, one it covers in part into a buffer of its own
    const wanted: number[] = [];
    const whole: (Buffer | undefined)[] = [];
    for (let i = Math.floor(offset / CHUNK_SIZE), last = Math.floor((offset + length - 1) / CHUNK_SIZE); i <= last; i++) {
      if (!this.index.blocks[i] || kept?.block === i) continue;
      const start = i * CHUNK_SIZE - offset;
      const end = Math.min((i + 1) * CHUNK_SIZE, this.size) - offset;
      wanted.push(i);
      whole.push(start >= 0 && end <= length ? out.subarray(start, end) : undefined);
    }
    const data = await this.chunks.readMany(
      wanted.map((i) => this.index.blocks[i]!),
      whole,
    );
    const got = new Map(wanted.map((i, k) => [i, data[k]]));
    await readBlocks(offset, length, out, (i) => Promise.resolve(got.get(i) ?? (kept?.block === i ? kept.data : ZEROS)));
    const lastWanted = wanted.length - 1;
    // a block opened into `out` belongs to the caller: only one with a buffer of its own is kept for the next read
    if (lastWanted >= 0 && !whole[lastWanted]) this.last = { block: wanted[lastWanted], data: data[lastWanted] };
    return out;
  }

  /** A block the index names no chunk for is a hole: what clients of the NBD server skip. */
  async allocation(offset: number, length: number): Promise<DiskExtent[]> {
    checkRange(offset, length, this.size);
    return blockRuns(this.index.blocks, offset, length);
  }

  /**
   * The blocks of [offset, offset + length) that hold a chunk, as stored: a compressed block's zstd frame is not
   * decompressed. `offset` lies on a block's edge and the end too, or at the disk's end; a block shorter than
   * CHUNK_SIZE there (the disk's last) is given as the bytes `read` gives, since its chunk's plaintext may run past the
   * disk's end.
   */
  async readPacked(offset: number, length: number): Promise<PackedBlock[]> {
    checkRange(offset, length, this.size);
    const end = offset + length;
    if (offset % CHUNK_SIZE !== 0 || (end % CHUNK_SIZE !== 0 && end !== this.size)) throw new RangeError(`${length} bytes at ${offset} are not whole blocks of ${CHUNK_SIZE} bytes`);
    const wholeEnd = end - (end % CHUNK_SIZE);
    const wanted: number[] = [];
    for (let i = offset / CHUNK_SIZE; i < wholeEnd / CHUNK_SIZE; i++) if (this.index.blocks[i]) wanted.push(i);
    const [packed, tail] = await Promise.all([this.chunks.readPacked(wanted.map((i) => this.index.blocks[i]!)), wholeEnd < end && this.index.blocks[wholeEnd / CHUNK_SIZE] ? this.read(wholeEnd, end - wholeEnd) : null]);
    const blocks = packed.map(({ compressed, body }, k) => {
      if (!compressed && body.length !== CHUNK_SIZE) throw new ChunkFormatError(`the chunk of block ${wanted[k]} holds ${body.length} bytes, not a block`);
      return { offset: wanted[k] * CHUNK_SIZE, length: CHUNK_SIZE, compressed, body };
    });
    if (tail) blocks.push({ offset: wholeEnd, length: tail.length, compressed: false, body: tail });
    return blocks;
  }

  close(): Promise<void> {
    return this.chunks.close();
  }
}

/**
 * A new point's disk as an NBD server writes it. A write that covers whole blocks stores them as they come; one that
 * covers part of a block reads the block (from the base or an earlier write), patches it and stores the result, one
 * write at a time per block so that two parts of a block both land. A block that ends up all zeros is no chunk.
 */
export class ChunkPointWriter implements WritableDisk {
  private readonly locks = new Map<number, Promise<unknown>>();

  constructor(
    private readonly store: ChunkStore,
    readonly size: number,
    private readonly blocks: (ChunkLocation | null)[],
    private readonly chunks: ChunkReader,
    /** Reads the base's pack indexes: where its blocks are, and the chunks a block is first deduplicated against. */
    private readonly readBase: () => Promise<void>,
  ) {
    this.base = [...blocks];
  }

  /** The base's locations, as the point started: what the commit need not check again. */
  private readonly base: readonly (ChunkLocation | null)[];
  private baseRead: Promise<void> | null = null;

  private baseKnown(): Promise<void> {
    return (this.baseRead ??= this.readBase());
  }

  async read(offset: number, length: number, into?: Buffer): Promise<Buffer> {
    checkRange(offset, length, this.size);
    const out = into ?? Buffer.allocUnsafe(length);
    await readBlocks(offset, length, out, (i) => this.current(i));
    return out;
  }

  /** The blocks as written so far: each answered write has set its blocks before its answer. */
  async allocation(offset: number, length: number): Promise<DiskExtent[]> {
    checkRange(offset, length, this.size);
    return blockRuns(this.blocks, offset, length);
  }

  write(offset: number, data: Buffer): Promise<void> {
    return this.each(
      offset,
      data.length,
      (from, take) => data.subarray(from, from + take),
      (block, within, from, take) => data.copy(block, within, from, from + take),
    );
  }

  writeZeroes(offset: number, length: number): Promise<void> {
    return this.each(
      offset,
      length,
      (_from, take) => ZEROS.subarray(0, take),
      (block, within, _from, take) => block.fill(0, within, within + take),
    );
  }

  /** What is written so far is durable (its packs published); the point itself is not, until `commit`. */
  flush(): Promise<void> {
    return this.store.flush();
  }

  /** Publishes the point under `name`, once every write answered has landed. */
  async commit(name: string): Promise<void> {
    await Promise.allSettled([...this.locks.values()]);
    await this.store.commitPoint(name, this.size, this.blocks, this.base);
  }

  close(): Promise<void> {
    return this.chunks.close();
  }

  /**
   * Runs a write block by block: a block it covers entirely (to the disk's end for the last) becomes `whole`'s bytes,
   * one it covers in part is read, patched by `patch` and stored again.
   */
  private async each(offset: number, length: number, whole: (from: number, take: number) => Buffer, patch: (block: Buffer, within: number, from: number, take: number) => void): Promise<void> {
    checkRange(offset, length, this.size);
    // a block is deduplicated against its base's chunks before any other pack is read for it
    await this.baseKnown();
    const parts: Promise<void>[] = [];
    for (let done = 0; done < length; ) {
      const at = offset + done;
      const i = Math.floor(at / CHUNK_SIZE);
      const within = at - i * CHUNK_SIZE;
      const blockLength = Math.min(CHUNK_SIZE, this.size - i * CHUNK_SIZE);
      const take = Math.min(length - done, blockLength - within);
      const from = done;
      parts.push(
        this.locked(i, async () => {
          let block: Buffer;
          if (within === 0 && take === blockLength) block = whole(from, take);
          else {
            block = Buffer.from(await this.current(i));
            patch(block, within, from, take);
          }
          this.blocks[i] = block.equals(ZEROS.subarray(0, blockLength)) ? null : await this.store.put(block);
        }),
      );
      done += take;
    }
    await Promise.all(parts);
  }

  private async current(i: number): Promise<Buffer> {
    await this.baseKnown();
    const at = this.blocks[i];
    return at ? this.chunks.read(at) : ZEROS.subarray(0, Math.min(CHUNK_SIZE, this.size - i * CHUNK_SIZE));
  }

  private locked<T>(i: number, work: () => Promise<T>): Promise<T> {
    const previous = this.locks.get(i) ?? Promise.resolve();
    const next = previous.then(work, work);
    const settled = next.catch(() => undefined);
    this.locks.set(i, settled);
    void settled.then(() => this.locks.get(i) === settled && this.locks.delete(i));
    return next;
  }
}

/** Stores a whole disk read from `disk` (a qcow2 chain's view, another point, an export) as the point `name`. */
export async function storeDisk(store: ChunkStore, name: string, disk: ReadableDisk): Promise<void> {
  const blocks: (ChunkLocation | null)[] = [];
  for (let offset = 0; offset < disk.size; offset += CHUNK_SIZE) {
    const length = Math.min(CHUNK_SIZE, disk.size - offset);
    const data = await disk.read(offset, length, Buffer.allocUnsafe(length));
    blocks.push(data.equals(ZEROS.subarray(0, length)) ? null : await store.put(data));
  }
  await store.commitPoint(name, disk.size, blocks);
}
