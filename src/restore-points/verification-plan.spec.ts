import { BlockDigests, DIGEST_BLOCK_SIZE as B, DIGEST_LENGTH, DigestRun } from '../wire/block-digests';
import { blocksToCheck, coverageOf, readsOf, readsThrough } from './verification-plan';

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

  it('on a long chain, each point gives what no later point overwrote', () => {
    // 60 points writing overlapping ranges; the plan against each block's last writer, worked out block by block
    const points = Array.from({ length: 60 }, (_, i) => ({ restorePointId: `p${i}`, digests: new BlockDigests(SIZE, i === 0 ? [data(0, 100)] : [data((i * 37) % 95, 1 + (i % 4), i), ...((i * 11) % 97 > (i * 37) % 95 + 5 ? [data((i * 11) % 97, 2, i)] : [])]) }));
    const lastWriter = new Map<number, string>();
    for (const p of points) for (const r of p.digests.runs) for (let b = r.first; b < r.first + r.count; b++) lastWriter.set(b, p.restorePointId);
    const planned = new Map<number, string>();
    for (const entry of blocksToCheck(points)) {
      for (const r of entry.digests.runs) {
        for (let b = r.first; b < r.first + r.count; b++) {
          expect(planned.has(b)).toBe(false);
          planned.set(b, entry.restorePointId);
          expect(entry.digests.digestAt(b)).toEqual(points.find((p) => p.restorePointId === entry.restorePointId)!.digests.digestAt(b));
        }
      }
    }
    expect([...planned].sort((a, b) => a[0] - b[0])).toEqual([...lastWriter].sort((a, b) => a[0] - b[0]));
  });

  it('reads the plan as one set per disk size, naming the point of each block', () => {
    const reads = readsOf(blocksToCheck(lineage));
    expect(reads).toHaveLength(1);
    expect(reads[0].digests.runs.map((r) => [r.first, r.count])).toEqual([[0, 2], [2, 1], [3, 1], [4, 6], [40, 1]]);
    expect([0, 2, 3, 9, 40].map((b) => reads[0].pointOf(b))).toEqual(['full', 'inc1', 'inc2', 'full', 'inc2']);
    expect(reads[0].digests.digestAt(3)).toEqual(inc2.digestAt(3));
    // a disk grown after the full: its points are read with their own size, so the old short last block stays short
    const grown = readsOf([{ restorePointId: 'old', digests: new BlockDigests(SIZE, [data(100, 1)]) }, { restorePointId: 'new', digests: new BlockDigests(SIZE + B, [data(101, 1, 1)]) }]);
    expect(grown.map((r) => [r.digests.virtualSize, r.digests.blockLength(100)])).toEqual([[SIZE, 4096], [SIZE + B, B]]);
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
