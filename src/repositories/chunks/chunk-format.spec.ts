import { hash, randomBytes } from 'node:crypto';
import { ChunkFormatError, deriveKeys, openChunk, openMeta, sealChunk, sealMeta, worthCompressing } from './chunk-format';
import { decodePackIndex, decodePointIndex, encodePackIndex, encodePointIndex } from './indexes';

const digestOf = (b: Buffer) => hash('sha256', b, 'buffer');
const text = Buffer.from('2026-11-26T10:00:00Z host app[42]: backup job completed bytes sent 4096\n'.repeat(900)).subarray(0, 65536);

describe('chunk records', () => {
  const keys = deriveKeys(randomBytes(32));

  it('compress what shrinks, keep raw what does not, and open to the same bytes, plain or sealed', () => {
    const noise = randomBytes(65536);
    for (const key of [null, keys.data]) {
      const small = sealChunk(digestOf(text), text, key);
      expect(small.length).toBeLessThan(text.length / 10);
      expect(openChunk(digestOf(text), small, key)).toEqual(text);
      const raw = sealChunk(digestOf(noise), noise, key);
      expect(raw.length).toBe(noise.length + 1 + (key ? 28 : 0));
      expect(openChunk(digestOf(noise), raw, key)).toEqual(noise);
    }
  });

  it('gives every sealed record a nonce of its own, past the pool they are drawn from, and each opens after the pool was replaced', () => {
    const data = text.subarray(0, 100);
    const records = Array.from({ length: 1200 }, () => sealChunk(digestOf(data), data, keys.data));
    expect(new Set(records.map((r) => r.subarray(0, 12).toString('hex'))).size).toBe(1200);
    for (const r of records) expect(openChunk(digestOf(data), r, keys.data)).toEqual(data);
  });

  it('opens a record straight into a block-sized buffer, compressed or raw, plain or sealed, and refuses one that holds more than the buffer', () => {
    const noise = randomBytes(65536);
    const short = text.subarray(0, 5000);
    for (const key of [null, keys.data]) {
      for (const data of [text, noise, short]) {
        const into = Buffer.alloc(65536, 0xee);
        const opened = openChunk(digestOf(data), sealChunk(digestOf(data), data, key), key, into);
        expect(opened.buffer).toBe(into.buffer);
        expect(opened.byteOffset).toBe(into.byteOffset);
        expect(opened.equals(data)).toBe(true);
      }
      for (const data of [text, noise]) expect(() => openChunk(digestOf(data), sealChunk(digestOf(data), data, key), key, Buffer.alloc(4096))).toThrow(ChunkFormatError);
    }
  });

  it('hands zstd the blocks worth it: not random (encrypted, compressed) data, but text, zeros, half-text blocks and short blocks', () => {
    expect(worthCompressing(randomBytes(65536))).toBe(false);
    expect(worthCompressing(randomBytes(40000))).toBe(false);
    expect(worthCompressing(text)).toBe(true);
    expect(worthCompressing(Buffer.alloc(65536))).toBe(true);
    expect(worthCompressing(Buffer.concat([text.subarray(0, 32768), randomBytes(32768)]))).toBe(true);
    // a quarter of text in a random block is still worth zstd's pass (its samples measure ~7.6 bits a byte)
    expect(worthCompressing(Buffer.concat([randomBytes(49152), text.subarray(0, 16384)]))).toBe(true);
    expect(worthCompressing(randomBytes(16383))).toBe(true);
  });

  it('a sealed record opens only with its key, under its own digest, and not after a bit flips', () => {
    const record = sealChunk(digestOf(text), text, keys.data);
    expect(() => openChunk(digestOf(text), record, deriveKeys(randomBytes(32)).data)).toThrow(ChunkFormatError);
    expect(() => openChunk(digestOf(Buffer.from('another block')), record, keys.data)).toThrow(/does not open with this repository's key/);
    const flipped = Buffer.from(record);
    flipped[20] ^= 1;
    expect(() => openChunk(digestOf(text), flipped, keys.data)).toThrow(ChunkFormatError);
    // the same block sealed twice differs (a fresh nonce each time): storage alone does not show equal content
    expect(sealChunk(digestOf(text), text, keys.data).equals(record)).toBe(false);
  });

  it('a short repository key is refused, and the two derived keys differ', () => {
    expect(() => deriveKeys(randomBytes(16))).toThrow(/at least 32 bytes/);
    expect(keys.data.equals(keys.meta)).toBe(false);
  });
});

describe('indexes', () => {
  it('a pack index and a sealed metadata object round-trip, and a sealed one opens only under its own name', () => {
    const entries = [0, 1, 2].map((k) => ({ digest: randomBytes(32), offset: k * 1000, length: 999 }));
    const keys = deriveKeys(randomBytes(32));
    const sealed = sealMeta('pack 0123456789abcdef', encodePackIndex(entries), keys.meta);
    expect(decodePackIndex(openMeta('pack 0123456789abcdef', sealed, keys.meta), 'p')).toEqual(entries);
    expect(() => openMeta('pack fedcba9876543210', sealed, keys.meta)).toThrow(/does not open/);
    expect(() => decodePackIndex(Buffer.alloc(7), 'p')).toThrow(/is not a pack index/);
  });

  it("a point index of a 2 GiB disk stored in sequence costs a few KiB, and keeps every block's place", () => {
    const packs = ['00000000000000aa', '00000000000000bb'];
    // a full: 32768 blocks, a tenth of them zeros, the rest in order across two packs; then a few blocks moved
    const blocks = Array.from({ length: 32768 }, (_, i) => (i % 10 === 9 ? null : { packId: packs[i < 16384 ? 0 : 1], entry: i < 16384 ? i : i - 16384 }));
    for (const i of [5, 700, 20000]) blocks[i] = { packId: packs[1], entry: 40000 + i };
    const index = { size: 2 * 1024 ** 3, chunkSize: 65536, blocks };
    const encoded = encodePointIndex(index);
    expect(decodePointIndex(encoded, 'p')).toEqual(index);
    expect(sealMeta('point a/b/c', encoded, null).length).toBeLessThan(8 * 1024);
  });

  it('a point index that does not add up is refused', () => {
    const good = encodePointIndex({ size: 3 * 65536 + 5, chunkSize: 65536, blocks: [null, { packId: '00000000000000aa', entry: 0 }, null, null] });
    expect(decodePointIndex(good, 'p').blocks).toHaveLength(4);
    expect(() => decodePointIndex(good.subarray(0, good.length - 1), 'p')).toThrow(/is not a point index/);
    expect(() => decodePointIndex(encodePointIndex({ size: 65536, chunkSize: 65536, blocks: [null, null] }), 'p')).toThrow(/2 blocks of 65536 bytes for a disk of 65536/);
    const wrongPack = Buffer.from(good);
    wrongPack.writeUInt32LE(9, wrongPack.length - 4 * 8 + 4);
    expect(() => decodePointIndex(wrongPack, 'p')).toThrow(/names pack 9 of 1/);
  });
});
