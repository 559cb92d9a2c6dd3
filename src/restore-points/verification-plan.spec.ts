import { BlockDigests, DIGEST_BLOCK_SIZE as B, DIGEST_LENGTH, DigestRun } from '../wire/block-digests';
import { blocksToCheck, coverageOf, readsThrough } from './verification-plan';

const tag = (block: number, gen: number) => Buffer.alloc(DIGEST_LENGTH, (block * 7 + gen) % 251);
const data = (first: number, count: number, gen = 0): DigestRun => ({ first, count, zero: false, digests: Buffer.concat(Array.from({ length: count }, (_, i) => tag(first + i, gen))) });
const SIZE = 100 * B + 4096;

describe('what a verify reads', () => {
  const full = new BlockDigests(SIZE, [data(0, 10)]);
  const inc1 = new BlockDigests(SIZE, [data(2, 1, 1)]);
  const inc2 = new BlockDigests(SIZE, [data(3, 1, 2), data(40, 1, 2)]);
  const lineage = [
    { restorePointId: 'full', digests: full },
    { restorePointId: 'inc1', digests: inc1 },
    { restorePointId: 'inc2', digests: inc2 },
  ];

  it('reads each visible block once, from the point that wrote it last', () => {
    const plan = blocksToCheck(lineage);
    expect(plan.map((p) => [p.restorePointId, p.digests.runs.map((r) => [r.first, r.count])])).toEqual([
      ['full', [[0, 2], [4, 6]]],
      ['inc1', [[2, 1]]],
      ['inc2', [[3, 1], [40, 1]]],
    ]);
  });

  it('a damaged block is read through by later points up to the first that overwrote it', () => {
    expect(readsThrough(lineage.slice(1), 0)).toEqual(['inc1', 'inc2']);
    expect(readsThrough(lineage.slice(1), 2)).toEqual([]);
    expect(readsThrough(lineage.slice(1), 3)).toEqual(['inc1']);
    expect(readsThrough([{ restorePointId: 'old', digests: null }], 3)).toEqual(['old']);
  });

  it('says how much of a lineage has digests', () => {
    expect(coverageOf([lineage])).toBe('all');
    expect(coverageOf([[{ restorePointId: 'old', digests: null }, ...lineage]])).toBe('partial');
    expect(coverageOf([[{ restorePointId: 'old', digests: null }]])).toBe('none');
  });
});
