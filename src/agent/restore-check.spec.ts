import { BlockDigests, DIGEST_BLOCK_SIZE as B, digestOf, DIGEST_LENGTH, zeroDigest } from '../wire/block-digests';
import { checkRestoredDisk } from './restore-check';

const SIZE = 8 * B + 4096;
const data = (fill: number, length = B) => digestOf(Buffer.alloc(length, fill));
const run = (first: number, digests: Buffer[]) => ({ first, count: digests.length, zero: false, digests: Buffer.concat(digests) });

describe('checking a restored disk against the point', () => {
  // the point: blocks 0-1 data, 2 written as zeroes, 8 (the short last block) data; 3-7 never written
  const expected = new BlockDigests(SIZE, [run(0, [data(1), data(2)]), { first: 2, count: 1, zero: true, digests: null }, run(8, [data(9, 4096)])]);

  it('passes a disk that holds exactly the point, however its zeroes were written', () => {
    const written = new BlockDigests(SIZE, [run(0, [data(1), data(2)]), run(5, [zeroDigest(B)]), run(8, [data(9, 4096)])]);
    expect(checkRestoredDisk('vda', expected, written)).toEqual({ damaged: [], damagedBlocks: 0, verifiedBlocks: 5 });
  });

  it('names every block that differs: changed data, data where the point had zeroes, zeroes where it had data', () => {
    const written = new BlockDigests(SIZE, [run(0, [data(7)]), run(4, [data(4)])]);
    const { damaged, damagedBlocks, verifiedBlocks } = checkRestoredDisk('vda', expected, written);
    expect(damaged.map((d) => [d.offset, d.length, d.expected === d.actual])).toEqual([
      [0, B, false],
      [B, B, false],
      [4 * B, B, false],
      [8 * B, 4096, false],
    ]);
    expect(damaged[0]).toEqual({ diskId: 'vda', offset: 0, length: B, expected: data(1).toString('hex'), actual: data(7).toString('hex') });
    expect(damaged[1].actual).toBe(zeroDigest(B).toString('hex'));
    expect(damagedBlocks).toBe(4);
    // block 2: the point wrote zeroes, the disk reads zeroes
    expect(verifiedBlocks).toBe(1);
  });

  it('names at most 50 blocks and counts the rest', () => {
    const big = 200 * B;
    const want = new BlockDigests(big, [{ first: 0, count: 200, zero: false, digests: Buffer.alloc(200 * DIGEST_LENGTH, 1) }]);
    const { damaged, damagedBlocks } = checkRestoredDisk('vdb', want, new BlockDigests(big, []));
    expect(damaged).toHaveLength(50);
    expect(damagedBlocks).toBe(200);
  });

  it('refuses digests of another disk size', () => {
    expect(() => checkRestoredDisk('vda', expected, new BlockDigests(SIZE + B, []))).toThrow(/describe a .*-byte disk/);
  });
});
