import { BlockDigests, DIGEST_BLOCK_SIZE as B, DIGEST_LENGTH, DigestFormatError, DigestRecorder, digestOf, DigestRun, zeroDigest } from './block-digests';

const tag = (block: number, gen: number) => Buffer.alloc(DIGEST_LENGTH, (block * 7 + gen) % 251);
const data = (first: number, count: number, gen = 0): DigestRun => ({ first, count, zero: false, digests: Buffer.concat(Array.from({ length: count }, (_, i) => tag(first + i, gen))) });
const zero = (first: number, count: number): DigestRun => ({ first, count, zero: true, digests: null });
const SIZE = 100 * B + 4096;

describe('block digests', () => {
  it('encodes and decodes runs of data and zeroes, and answers per block', () => {
    const set = new BlockDigests(SIZE, [data(0, 3), zero(3, 2), data(10, 1), data(100, 1)]);
    const back = BlockDigests.decode(set.encode());
    expect(back.runs).toEqual(set.runs);
    expect(back.blockCount).toBe(7);
    expect(back.bytes).toBe(6 * B + 4096);
    expect(back.digestAt(1)).toEqual(tag(1, 0));
    expect(back.digestAt(4)).toEqual(zeroDigest(B));
    expect(back.digestAt(5)).toBeNull();
    expect(back.blockLength(100)).toBe(4096);
  });

  it('refuses damaged or foreign files', () => {
    const good = new BlockDigests(SIZE, [data(0, 2)]).encode();
    expect(() => BlockDigests.decode(good.subarray(0, good.length - 1))).toThrow(DigestFormatError);
    expect(() => BlockDigests.decode(Buffer.concat([good, Buffer.alloc(1)]))).toThrow(/after the last run/);
    expect(() => BlockDigests.decode(Buffer.from('not a digest file at all, sorry'))).toThrow(/magic/);
    expect(() => BlockDigests.decode(new BlockDigests(SIZE, [data(100, 2)]).encode())).toThrow(/beyond the disk/);
    expect(() => BlockDigests.decode(new BlockDigests(SIZE, [data(5, 2), data(6, 1)]).encode())).toThrow(/out of order/);
  });

  it('a union keeps the newer digests where both wrote and the older ones elsewhere (merge, rebase)', () => {
    const older = new BlockDigests(SIZE, [data(0, 10, 1)]);
    const newer = new BlockDigests(SIZE, [data(2, 2, 2), zero(5, 1), data(20, 1, 2)]);
    const union = BlockDigests.union(older, newer);
    expect(union.blockCount).toBe(11);
    expect(union.digestAt(1)).toEqual(tag(1, 1));
    expect(union.digestAt(3)).toEqual(tag(3, 2));
    expect(union.digestAt(4)).toEqual(tag(4, 1));
    expect(union.digestAt(5)).toEqual(zeroDigest(B));
    expect(union.digestAt(20)).toEqual(tag(20, 2));
    // the union of a union is the same set: a resumed merge may combine again
    expect(BlockDigests.union(older, union).encode()).toEqual(union.encode());
  });

  it('minus leaves what later points did not overwrite', () => {
    const set = new BlockDigests(SIZE, [data(0, 10)]);
    const left = set.minus([{ first: 2, count: 3 }, { first: 3, count: 1 }, { first: 9, count: 5 }]);
    expect(left.runs.map((r) => [r.first, r.count])).toEqual([[0, 2], [5, 4]]);
    expect(left.digestAt(6)).toEqual(tag(6, 0));
  });

  it('the recorder fills runs in any order and hashes the short last block by its real length', () => {
    const recorder = new DigestRecorder(SIZE);
    const first = recorder.add(0, 2 * B, false);
    recorder.add(2 * B, 3 * B, true);
    const last = recorder.add(99 * B, B + 4096, false);
    const bytes = Buffer.alloc(2 * B + 4096, 7);
    DigestRecorder.hashInto(last, 99 * B, bytes.subarray(0, B + 4096));
    DigestRecorder.hashInto(first, B, bytes.subarray(0, B));
    DigestRecorder.hashInto(first, 0, bytes.subarray(0, B));
    const set = recorder.result();
    expect(set.runs.map((r) => [r.first, r.count, r.zero])).toEqual([[0, 2, false], [2, 3, true], [99, 2, false]]);
    expect(set.digestAt(1)).toEqual(digestOf(bytes.subarray(0, B)));
    expect(set.digestAt(100)).toEqual(digestOf(bytes.subarray(0, 4096)));
    expect(() => recorder.add(B / 2, B, false)).toThrow(/aligned/);
  });
});
