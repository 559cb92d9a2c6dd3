import { randomBytes } from 'node:crypto';
import { DigestIndex } from './digest-index';
import type { ChunkLocation } from './indexes';

/** An index over a store faked as a table of digests by location, the way ChunkStore answers `digestAt`. */
function indexOver(): { index: DigestIndex; put: (digest: Buffer, at: ChunkLocation) => void } {
  const stored = new Map<string, Buffer>();
  const index = new DigestIndex((at) => stored.get(`${at.packId}/${at.entry}`));
  return {
    index,
    put: (digest, at) => {
      stored.set(`${at.packId}/${at.entry}`, digest);
      index.add(digest, at);
    },
  };
}

/** Another digest whose first 48 bits, the index's key, are the same. */
function sameKey(digest: Buffer): Buffer {
  const other = randomBytes(32);
  digest.copy(other, 0, 0, 6);
  return other;
}

describe('DigestIndex', () => {
  it('finds each chunk where it was added, and nothing for a digest never added', () => {
    const { index, put } = indexOver();
    const digests = Array.from({ length: 5000 }, () => randomBytes(32));
    digests.forEach((d, i) => put(d, { packId: `p${i % 7}`, entry: i }));
    digests.forEach((d, i) => expect(index.get(d)).toEqual({ packId: `p${i % 7}`, entry: i }));
    expect(index.has(randomBytes(32))).toBe(false);
  });

  it('keeps the copy added first of a chunk stored twice', () => {
    const { index, put } = indexOver();
    const digest = randomBytes(32);
    put(digest, { packId: 'a', entry: 3 });
    put(digest, { packId: 'b', entry: 9 });
    expect(index.get(digest)).toEqual({ packId: 'a', entry: 3 });
  });

  it('tells apart digests that share its key, by the whole digest, and never answers one for the other', () => {
    const { index, put } = indexOver();
    const first = randomBytes(32);
    const second = sameKey(first);
    const third = sameKey(first);
    put(first, { packId: 'a', entry: 0 });
    expect(index.get(second)).toBeUndefined();
    put(second, { packId: 'b', entry: 1 });
    put(third, { packId: 'c', entry: 2 });
    expect([index.get(first), index.get(second), index.get(third)]).toEqual([
      { packId: 'a', entry: 0 },
      { packId: 'b', entry: 1 },
      { packId: 'c', entry: 2 },
    ]);
    expect(index.has(sameKey(first))).toBe(false);
  });

  it("forgets a pack's chunks only where it has them in that pack, keyed or apart", () => {
    const { index, put } = indexOver();
    const first = randomBytes(32);
    const second = sameKey(first);
    const elsewhere = randomBytes(32);
    put(first, { packId: 'lost', entry: 0 });
    put(second, { packId: 'lost', entry: 1 });
    put(elsewhere, { packId: 'kept', entry: 0 });
    // the same chunk known in another pack first stays known there
    put(elsewhere, { packId: 'lost', entry: 2 });
    index.forgetPack('lost', [first, second, elsewhere]);
    expect([index.get(first), index.get(second), index.get(elsewhere)]).toEqual([undefined, undefined, { packId: 'kept', entry: 0 }]);
    // a chunk stored again after its pack was lost is found in its new place
    put(second, { packId: 'again', entry: 0 });
    expect(index.get(second)).toEqual({ packId: 'again', entry: 0 });
  });

  it('holds entries beyond what its packed form takes, apart', () => {
    const { index, put } = indexOver();
    const digest = randomBytes(32);
    put(digest, { packId: 'huge', entry: 2 ** 24 + 5 });
    expect(index.get(digest)).toEqual({ packId: 'huge', entry: 2 ** 24 + 5 });
  });

  it('holds more chunks than one JavaScript Map can (2^24): a repository past 16.7 million distinct chunks stays writable', () => {
    // digests made from their location, so that the test keeps none of them: the index itself holds numbers only
    const PER_PACK = 2 ** 20;
    const count = 2 ** 24 + 2 ** 16;
    const digestOf = (i: number, into = Buffer.alloc(32)) => {
      into.fill(0);
      into.writeUIntLE(i, 0, 6);
      return into;
    };
    const packIds = Array.from({ length: Math.ceil(count / PER_PACK) + 1 }, (_, k) => `p${k}`);
    const locationOf = (i: number): ChunkLocation => ({ packId: packIds[Math.floor(i / PER_PACK)], entry: i % PER_PACK });
    const index = new DigestIndex((at) => digestOf(Number(at.packId.slice(1)) * PER_PACK + at.entry));
    const digest = Buffer.alloc(32);
    for (let i = 0; i < count; i++) index.add(digestOf(i, digest), locationOf(i));
    for (let i = 0; i < count; i += 4099) expect(index.get(digestOf(i))).toEqual(locationOf(i));
    expect(index.get(digestOf(count - 1))).toEqual(locationOf(count - 1));
    expect(index.has(digestOf(count))).toBe(false);
  }, 120_000);
});
