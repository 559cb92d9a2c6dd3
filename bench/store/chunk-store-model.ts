import { createCipheriv, createDecipheriv, hash, randomBytes } from 'node:crypto';
import { mkdirSync, readdirSync, readFileSync, statSync, writeFileSync } from 'node:fs';
import { open, FileHandle } from 'node:fs/promises';
import { join } from 'node:path';
import { compress, decompress } from 'zstd-napi';
import { BLOCK, BlockMap } from './blocks';

/*
 * The content-addressed candidate as a measuring model, not the product: 64 KiB chunks named by the SHA-256 the
 * hub already keeps for every block, each stored once per repository, compressed with zstd, then sealed with
 * AES-256-GCM (a random 96-bit nonce per chunk), appended to pack files written once and never rewritten; a pack's
 * index (digest, offset, length of each chunk) is written beside it when it is closed. A point is an index of the
 * VM's disk: a full lists every block, an incremental only the blocks changed since its parent. Everything is real
 * bytes on disk, measured with stat; one thread does the work.
 */

const PACK_LIMIT = 64 * 1024 * 1024;
const NONCE = 12;
const TAG = 16;

interface Location {
  pack: number;
  offset: number;
  length: number;
  compressed: boolean;
}

interface PointIndex {
  parent: string | null;
  size: number;
  /** block number → digest (null: zeros) */
  entries: [number, string | null][];
}

export class ChunkStoreModel {
  private readonly known = new Map<string, Location>();
  private pack: { n: number; file: FileHandle; size: number; entries: string[] } | null = null;
  private packs = 0;
  readonly stats = { chunks: 0, rawBytes: 0, storedBytes: 0, referenced: 0 };

  constructor(
    private readonly dir: string,
    private readonly key: Buffer | null,
    private readonly level = 3,
  ) {
    mkdirSync(join(dir, 'packs'), { recursive: true });
    mkdirSync(join(dir, 'points'), { recursive: true });
  }

  /** Stores a point: the blocks in `blocks` (all of a full, the changed ones of an incremental) read from `image`. */
  async point(name: string, image: string, map: BlockMap, blocks: number[], parent: string | null): Promise<void> {
    const source = await open(image, 'r');
    const buffer = Buffer.allocUnsafe(BLOCK);
    const entries: [number, string | null][] = [];
    try {
      for (const i of blocks) {
        const digest = map.digests[i];
        entries.push([i, digest]);
        if (digest === null) continue;
        if (this.known.has(digest)) {
          this.stats.referenced++;
          continue;
        }
        const { bytesRead } = await source.read(buffer, 0, BLOCK, i * BLOCK);
        // the hub hashes what it is sent before the digest names a chunk others will share: an agent's word is not enough
        if (hash('sha256', buffer.subarray(0, bytesRead), 'hex') !== digest) throw new Error(`block ${i} of ${image} changed under the bench`);
        await this.append(digest, buffer.subarray(0, bytesRead));
      }
    } finally {
      await source.close();
    }
    const index: PointIndex = { parent, size: map.size, entries };
    writeFileSync(join(this.dir, 'points', name), compress(Buffer.from(JSON.stringify(index)), { compressionLevel: 19 }));
  }

  private async append(digest: string, data: Buffer): Promise<void> {
    const packed = compress(data, { compressionLevel: this.level });
    const compressed = packed.length < data.length;
    const body = compressed ? packed : data;
    let record: Buffer;
    if (this.key) {
      const nonce = randomBytes(NONCE);
      const cipher = createCipheriv('aes-256-gcm', this.key, nonce);
      record = Buffer.concat([nonce, cipher.update(body), cipher.final(), cipher.getAuthTag()]);
    } else record = body;
    if (!this.pack || this.pack.size + record.length > PACK_LIMIT) await this.rollPack();
    const pack = this.pack!;
    await pack.file.write(record, 0, record.length, pack.size);
    this.known.set(digest, { pack: pack.n, offset: pack.size, length: record.length, compressed });
    pack.entries.push(digest);
    pack.size += record.length;
    this.stats.chunks++;
    this.stats.rawBytes += data.length;
    this.stats.storedBytes += record.length;
  }

  private async rollPack(): Promise<void> {
    await this.closePack();
    const n = this.packs++;
    this.pack = { n, file: await open(join(this.dir, 'packs', `${n}.pack`), 'wx'), size: 0, entries: [] };
  }

  private async closePack(): Promise<void> {
    if (!this.pack) return;
    await this.pack.file.sync();
    await this.pack.file.close();
    // digest (32 bytes), offset and length (4 each): what a reader needs to find a chunk without the hub's database
    const index = Buffer.alloc(this.pack.entries.length * 40);
    this.pack.entries.forEach((d, k) => {
      const at = this.known.get(d)!;
      Buffer.from(d, 'hex').copy(index, k * 40);
      index.writeUInt32LE(at.offset, k * 40 + 32);
      index.writeUInt32LE(at.length, k * 40 + 36);
    });
    writeFileSync(join(this.dir, 'packs', `${this.pack.n}.index`), index);
    this.pack = null;
  }

  async flush(): Promise<void> {
    await this.closePack();
  }

  /** Writes the point's whole disk to `out` (a raw image), reading its index chain and the packs. */
  async restore(name: string, out: string): Promise<void> {
    const chain: PointIndex[] = [];
    for (let at: string | null = name; at; ) {
      const index = JSON.parse(decompress(readFileSync(join(this.dir, 'points', at))).toString()) as PointIndex;
      chain.unshift(index);
      at = index.parent;
    }
    const digests: (string | null)[] = new Array(Math.ceil(chain.at(-1)!.size / BLOCK)).fill(null);
    for (const index of chain) for (const [i, d] of index.entries) digests[i] = d;
    const packs = new Map<number, FileHandle>();
    const target = await open(out, 'wx');
    try {
      await target.truncate(chain.at(-1)!.size);
      for (let i = 0; i < digests.length; i++) {
        const digest = digests[i];
        if (digest === null) continue;
        const data = await this.chunk(this.known.get(digest)!, packs);
        await target.write(data, 0, data.length, i * BLOCK);
      }
      await target.sync();
    } finally {
      await target.close();
      for (const p of packs.values()) await p.close();
    }
  }

  /** Bytes on disk: packs, their indexes, the points' indexes. */
  bytesOnDisk(): number {
    let total = 0;
    for (const sub of ['packs', 'points']) for (const f of readdirSync(join(this.dir, sub))) total += statSync(join(this.dir, sub, f)).blocks * 512;
    return total;
  }

  /** Every stored chunk's plaintext, one in `every`: what the codec comparison compresses again. */
  async sample(every: number): Promise<Buffer[]> {
    const out: Buffer[] = [];
    const packs = new Map<number, FileHandle>();
    let n = 0;
    try {
      for (const at of this.known.values()) if (n++ % every === 0) out.push(await this.chunk(at, packs));
    } finally {
      for (const p of packs.values()) await p.close();
    }
    return out;
  }

  /** A chunk's plaintext: read from its pack (opened once into `packs`), opened with the key, decompressed. */
  private async chunk(at: Location, packs: Map<number, FileHandle>): Promise<Buffer> {
    let pack = packs.get(at.pack);
    if (!pack) packs.set(at.pack, (pack = await open(join(this.dir, 'packs', `${at.pack}.pack`), 'r')));
    const record = Buffer.allocUnsafe(at.length);
    await pack.read(record, 0, at.length, at.offset);
    let body = record;
    if (this.key) {
      const decipher = createDecipheriv('aes-256-gcm', this.key, record.subarray(0, NONCE));
      decipher.setAuthTag(record.subarray(record.length - TAG));
      body = Buffer.concat([decipher.update(record.subarray(NONCE, record.length - TAG)), decipher.final()]);
    }
    return at.compressed ? decompress(body) : body;
  }
}
