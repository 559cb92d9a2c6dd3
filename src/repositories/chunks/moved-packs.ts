import { promises as fs } from 'node:fs';
import { join } from 'node:path';
import { readFileIfPresent } from '../qcow2/durable-fs';
import { ChunkFormatError, openMeta } from './chunk-format';
import { decodePackIndex, PACK_ID, PackEntry } from './indexes';

/*
 * A pack a collection repacked (gc.ts): its live chunks were copied into a new pack, and `<pack>.moved` says where
 * each of its entries went, so that the point indexes naming (pack, entry), written once, read on unchanged. The
 * old pack and its index are removed once the record is published; the record stays while a point names the pack.
 */

const MOVED_MAGIC = Buffer.from('SDPM');
/** A chain of repacks longer than this is a damaged (or forged) store, not a history: the lookups stop. */
const MOVES_LIMIT = 64;

export interface MovedPack {
  /** The pack its live entries went to. */
  to: string;
  /** For each entry of the old pack, its entry in `to`; -1 for one no point named, which the repack dropped. */
  entries: Int32Array;
}

/** The record's name, sealed with it: a record moved under another pack's name fails to open. */
export const movedRecordName = (packId: string) => `moved ${packId}`;

export function encodeMovedPack(moved: MovedPack): Buffer {
  const out = Buffer.alloc(MOVED_MAGIC.length + 8 + 4 + moved.entries.length * 4);
  let at = MOVED_MAGIC.copy(out, 0);
  at += out.write(moved.to, at, 'hex');
  out.writeUInt32LE(moved.entries.length, at);
  at += 4;
  for (const entry of moved.entries) at = out.writeInt32LE(entry, at);
  return out;
}

export function decodeMovedPack(bytes: Buffer, name: string): MovedPack {
  const header = MOVED_MAGIC.length + 8 + 4;
  if (bytes.length < header || !bytes.subarray(0, MOVED_MAGIC.length).equals(MOVED_MAGIC)) throw new ChunkFormatError(`${name} is not a moved pack's record`);
  const to = bytes.subarray(MOVED_MAGIC.length, MOVED_MAGIC.length + 8).toString('hex');
  const count = bytes.readUInt32LE(MOVED_MAGIC.length + 8);
  if (bytes.length !== header + count * 4) throw new ChunkFormatError(`${name} names ${count} entries in ${bytes.length} bytes`);
  const entries = new Int32Array(count);
  for (let k = 0; k < count; k++) {
    entries[k] = bytes.readInt32LE(header + k * 4);
    if (entries[k] < -1) throw new ChunkFormatError(`${name} moves entry ${k} to ${entries[k]}`);
  }
  return { to, entries };
}

/** The record of a repacked pack, or null for a pack no collection moved. */
export async function readMovedPack(dir: string, packId: string, metaKey: Buffer | null): Promise<MovedPack | null> {
  const bytes = await readFileIfPresent(join(dir, 'packs', `${packId}.moved`));
  if (!bytes) return null;
  const moved = decodeMovedPack(openMeta(movedRecordName(packId), bytes, metaKey), movedRecordName(packId));
  if (!PACK_ID.test(moved.to) || moved.to === packId) throw new ChunkFormatError(`${movedRecordName(packId)} names the pack ${moved.to}`);
  return moved;
}

/** Follows a pack's repacks to the pack that holds its chunks now, with every record passed on the way. */
async function followMoves(dir: string, packId: string, metaKey: Buffer | null): Promise<{ packId: string; moves: { from: string; moved: MovedPack }[] }> {
  const moves: { from: string; moved: MovedPack }[] = [];
  for (let at = packId; ; ) {
    const moved = await readMovedPack(dir, at, metaKey);
    if (!moved) return { packId: at, moves };
    if (moves.length >= MOVES_LIMIT || moves.some((m) => m.from === moved.to)) throw new ChunkFormatError(`pack ${packId} was moved ${moves.length + 1} times, or in a circle: the store is damaged`);
    moves.push({ from: at, moved });
    at = moved.to;
  }
}

/** An entry's number in the pack `moves` end in; -1 for one a repack dropped. */
function entryAfterMoves(moves: readonly { moved: MovedPack }[], entry: number): number {
  for (const { moved } of moves) {
    if (entry < 0) return -1;
    entry = moved.entries[entry] ?? -1;
  }
  return entry;
}

/** A pack's entries as the points naming it number them, read through its repacks: undefined for a dropped one. */
export async function readPackEntries(dir: string, packId: string, metaKey: Buffer | null): Promise<(PackEntry | undefined)[]> {
  const { packId: holder, moves } = await followMoves(dir, packId, metaKey);
  const entries = decodePackIndex(openMeta(`pack ${holder}`, await fs.readFile(join(dir, 'packs', `${holder}.idx`)), metaKey), `pack ${holder}`);
  if (!moves.length) return entries;
  return Array.from(moves[0].moved.entries, (_, k) => {
    const entry = entryAfterMoves(moves, k);
    return entry < 0 ? undefined : entries[entry];
  });
}

/** The files a point naming this pack reads through: its records of repacks, and the pack and index that hold its chunks. */
export async function packFilesOf(dir: string, packId: string, metaKey: Buffer | null): Promise<string[]> {
  const { packId: holder, moves } = await followMoves(dir, packId, metaKey);
  return [...moves.map((m) => join(dir, 'packs', `${m.from}.moved`)), ...['pack', 'idx'].map((kind) => join(dir, 'packs', `${holder}.${kind}`))];
}
