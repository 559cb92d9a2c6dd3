import type { ChunkLocation } from './indexes';

/** A location packed in one number: the pack's ordinal above, the entry in the low 24 bits (a pack of 64 MiB holds fewer). */
const ENTRY_BITS = 2 ** 24;
const PREFIX_BYTES = 6;
/**
 * The keys are spread over this many Maps by the digest's first byte: a JavaScript Map holds at most 2^24 entries,
 * so one Map bounded a writer's repository to 16.7 million distinct chunks (about 1 TiB of distinct data before
 * compression), past which every backup into it failed; 256 of them bound it to 4.3 billion.
 */
const SHARDS = 256;

/**
 * Where each chunk a writer knows of is, by its digest: what a new block is deduplicated against. A writer fills it
 * with every pack index of the repository once its export serves, so this is what that reading costs: keyed by the
 * digest's first 48 bits as a number, with the location packed in another, 60,000 chunks took 25-30 ms to key here
 * where a Map of hex strings to objects took 110-140 ms (and held a 64-character string and an object per chunk).
 * Two digests that share those bits are told apart by the full digest, read back where the store keeps it; the
 * second one goes to a Map of its own, by hex.
 */
export class DigestIndex {
  private readonly shards = Array.from({ length: SHARDS }, () => new Map<number, number>());
  private readonly spilled = new Map<string, ChunkLocation>();
  private readonly packIds: string[] = [];
  private readonly ordinals = new Map<string, number>();

  /** `digestAt` gives the digest stored at a location the index holds. */
  constructor(private readonly digestAt: (at: ChunkLocation) => Buffer | undefined) {}

  get(digest: Buffer): ChunkLocation | undefined {
    const slot = this.shards[digest[0]].get(digest.readUIntLE(0, PREFIX_BYTES));
    if (slot !== undefined) {
      const at = this.unpack(slot);
      if (this.digestAt(at)?.equals(digest)) return at;
    }
    return this.spilled.size ? this.spilled.get(digest.toString('hex')) : undefined;
  }

  has(digest: Buffer): boolean {
    return this.get(digest) !== undefined;
  }

  /** Adds a chunk unless its digest is known already: the copy known first stays the one deduplicated against. */
  add(digest: Buffer, at: ChunkLocation): void {
    const prefix = digest.readUIntLE(0, PREFIX_BYTES);
    const slots = this.shards[digest[0]];
    const slot = slots.get(prefix);
    if (slot === undefined && at.entry < ENTRY_BITS) {
      slots.set(prefix, this.ordinal(at.packId) * ENTRY_BITS + at.entry);
      return;
    }
    if (slot !== undefined && this.digestAt(this.unpack(slot))?.equals(digest)) return;
    const hex = digest.toString('hex');
    if (!this.spilled.has(hex)) this.spilled.set(hex, at);
  }

  /** Forgets the chunks a pack held (one that could not be written whole), where this index has them in that pack. */
  forgetPack(packId: string, digests: readonly Buffer[]): void {
    const ordinal = this.ordinals.get(packId);
    for (const digest of digests) {
      const prefix = digest.readUIntLE(0, PREFIX_BYTES);
      const slots = this.shards[digest[0]];
      const slot = slots.get(prefix);
      if (slot !== undefined && Math.floor(slot / ENTRY_BITS) === ordinal) slots.delete(prefix);
      if (this.spilled.size) {
        const hex = digest.toString('hex');
        if (this.spilled.get(hex)?.packId === packId) this.spilled.delete(hex);
      }
    }
  }

  private ordinal(packId: string): number {
    let ordinal = this.ordinals.get(packId);
    if (ordinal === undefined) {
      ordinal = this.packIds.push(packId) - 1;
      this.ordinals.set(packId, ordinal);
    }
    return ordinal;
  }

  private unpack(slot: number): ChunkLocation {
    return { packId: this.packIds[Math.floor(slot / ENTRY_BITS)], entry: slot % ENTRY_BITS };
  }
}
