import { alignPlan, CopyOp, dirtyRanges, layerRanges, planFull, planIncremental, splitRequests, withZeroGaps } from './copy-plan';

const K = 1024;
const e = (offset: number, length: number, flags: number) => ({ offset, length, flags });
const data = (offset: number, length: number): CopyOp => ({ kind: 'data', offset, length });
const zero = (offset: number, length: number): CopyOp => ({ kind: 'zero', offset, length });

describe('planFull', () => {
  const allocation = [e(0, 64 * K, 0), e(64 * K, 64 * K, 0), e(128 * K, 64 * K, 3), e(192 * K, 64 * K, 2), e(256 * K, 64 * K, 1), e(320 * K, 64 * K, 0)];

  it('copies data, treats HOLE without ZERO as data, skips zeroes on a zero target', () => {
    expect(planFull(allocation, true)).toEqual([data(0, 128 * K), data(256 * K, 128 * K)]);
  });

  it('zeroes zero extents when the target is not known to be zero', () => {
    expect(planFull(allocation, false)).toEqual([data(0, 128 * K), zero(128 * K, 128 * K), data(256 * K, 128 * K)]);
  });
});

describe('dirtyRanges', () => {
  it('keeps dirty extents, widens them to clusters, clamps to the export and merges', () => {
    const bitmap = [e(0, 100, 0), e(100, 50, 1), e(150, 70000, 0), e(70150, 10, 1), e(200 * K, 64 * K, 1), e(264 * K, 64 * K, 1), e(400 * K, 4 * K, 1)];
    expect(dirtyRanges(bitmap, 64 * K, 405 * K)).toEqual([
      { offset: 0, length: 128 * K },
      { offset: 192 * K, length: 213 * K },
    ]);
  });

  it('returns nothing for a clean bitmap', () => {
    expect(dirtyRanges([e(0, 1 << 30, 0)], 64 * K, 1 << 30)).toEqual([]);
  });
});

describe('layerRanges', () => {
  it('keeps depth 1 only (not unallocated, not a backing file), widens to clusters, clamps and merges', () => {
    const depth = [e(0, 1 * K, 1), e(1 * K, 127 * K, 2), e(128 * K, 64 * K, 0), e(192 * K, 64 * K, 1), e(256 * K, 64 * K, 1), e(320 * K, 64 * K, 3), e(384 * K, 10, 1), e(384 * K + 10, 21 * K - 10, 0)];
    expect(layerRanges(depth, 64 * K, 405 * K)).toEqual([
      { offset: 0, length: 64 * K },
      { offset: 192 * K, length: 128 * K },
      { offset: 384 * K, length: 21 * K },
    ]);
  });

  it('treats the depth as a number, not as bits: depth 3 is a backing file, not the top', () => {
    expect(layerRanges([e(0, 64 * K, 3), e(64 * K, 64 * K, 5)], 64 * K, 128 * K)).toEqual([]);
  });

  it('feeds planIncremental: zero ranges of the layer become zeroes, the rest data', () => {
    const layer = layerRanges([e(0, 1024 * K, 2), e(1024 * K, 1024 * K, 1), e(2048 * K, 1024 * K, 0)], 64 * K, 3072 * K);
    expect(planIncremental(layer, [e(0, 1536 * K, 0), e(1536 * K, 1536 * K, 3)])).toEqual([data(1024 * K, 512 * K), zero(1536 * K, 512 * K)]);
  });
});

describe('planIncremental', () => {
  it('copies data and zeroes zero ranges, only inside dirty ranges', () => {
    const dirty = [{ offset: 0, length: 128 * K }, { offset: 256 * K, length: 192 * K }];
    const allocation = [e(0, 96 * K, 0), e(96 * K, 200 * K, 3), e(296 * K, 40 * K, 1), e(336 * K, 1000 * K, 0)];
    expect(planIncremental(dirty, allocation)).toEqual([data(0, 96 * K), zero(96 * K, 32 * K), zero(256 * K, 40 * K), data(296 * K, 152 * K)]);
  });

  it('refuses an allocation map with a gap', () => {
    expect(() => planIncremental([{ offset: 0, length: 100 }], [e(0, 50, 0), e(60, 40, 0)])).toThrow(/does not cover 50/);
  });
});

describe('alignPlan', () => {
  it('is the identity for byte granularity', () => {
    const ops = [data(1, 2), zero(3, 4)];
    expect(alignPlan(ops, 1, 100)).toEqual(ops);
  });

  it('widens data, shrinks zeroes and gives their ragged edges to data', () => {
    expect(alignPlan([data(100, 100), zero(200, 5000), data(5200, 10)], 512, 100_000)).toEqual([data(0, 512), zero(512, 4608), data(5120, 512)]);
  });

  it('turns a zero range narrower than a block into data and merges neighbours', () => {
    expect(alignPlan([data(0, 600), zero(600, 300), data(900, 100)], 512, 4096)).toEqual([data(0, 1024)]);
  });

  it('keeps the unaligned export end', () => {
    expect(alignPlan([zero(0, 1000), data(1000, 300)], 512, 1300)).toEqual([zero(0, 512), data(512, 788)]);
    expect(alignPlan([data(0, 10), zero(10, 1290)], 512, 1300)).toEqual([data(0, 512), zero(512, 788)]);
  });

  it('never leaves an unaligned boundary or overlap (random plans)', () => {
    let seed = 7;
    const rand = () => ((seed = (seed * 1103515245 + 12345) % 2 ** 31) / 2 ** 31);
    for (let round = 0; round < 500; round++) {
      const size = 64 * K + Math.floor(rand() * 4096);
      const ops: CopyOp[] = [];
      let pos = 0;
      while (pos < size) {
        const len = Math.min(size - pos, 1 + Math.floor(rand() * 3000));
        const r = rand();
        if (r < 0.4) ops.push(data(pos, len));
        else if (r < 0.8) ops.push(zero(pos, len));
        pos += len;
      }
      const align = [512, 4096][round % 2];
      const out = alignPlan(ops, align, size);
      const problems: string[] = [];
      let last = 0;
      for (const op of out) {
        const end = op.offset + op.length;
        if (op.offset % align !== 0 || (end % align !== 0 && end !== size)) problems.push(`unaligned ${op.offset}+${op.length}`);
        if (op.offset < last || op.length <= 0) problems.push(`overlap or empty at ${op.offset}`);
        last = end;
      }
      // every original data byte is still covered by data, every original zero byte by data or zero
      const cover = (at: number) => out.find((o) => o.offset <= at && at < o.offset + o.length);
      for (const op of ops) {
        for (const at of [op.offset, op.offset + op.length - 1]) {
          const c = cover(at);
          if (!c || (op.kind === 'data' && c.kind !== 'data')) problems.push(`${op.kind} byte ${at} lost`);
        }
      }
      expect(problems).toEqual([]);
    }
  });
});

describe('withZeroGaps', () => {
  it('turns what a full plan leaves out (before, between and after its operations) into zero operations, merged with its own zeroes', () => {
    const ops: CopyOp[] = [
      { kind: 'data', offset: 64, length: 64 },
      { kind: 'zero', offset: 128, length: 64 },
      { kind: 'data', offset: 320, length: 64 },
    ];
    expect(withZeroGaps(ops, 512)).toEqual([
      { kind: 'zero', offset: 0, length: 64 },
      { kind: 'data', offset: 64, length: 64 },
      { kind: 'zero', offset: 128, length: 192 },
      { kind: 'data', offset: 320, length: 64 },
      { kind: 'zero', offset: 384, length: 128 },
    ]);
    expect(withZeroGaps([], 100)).toEqual([{ kind: 'zero', offset: 0, length: 100 }]);
    expect(withZeroGaps([{ kind: 'data', offset: 0, length: 100 }], 100)).toEqual([{ kind: 'data', offset: 0, length: 100 }]);
  });
});

describe('splitRequests', () => {
  it('cuts data at multiples of the request size and zeroes at multiples of the zero size', () => {
    const reqs = [...splitRequests([data(100, 1000), zero(2048, 5000)], 512, 4096)];
    expect(reqs).toEqual([data(100, 412), data(512, 512), data(1024, 76), zero(2048, 2048), zero(4096, 2952)]);
  });
});
