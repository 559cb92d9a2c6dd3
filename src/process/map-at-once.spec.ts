import { mapAtOnce } from './map-at-once';

describe('mapAtOnce', () => {
  it('keeps the order of the items and never runs more than the limit at once', async () => {
    let running = 0;
    let most = 0;
    const results = await mapAtOnce([30, 10, 20, 5, 15], 2, async (ms) => {
      most = Math.max(most, ++running);
      await new Promise((r) => setTimeout(r, ms));
      running--;
      return ms * 2;
    });
    expect(results).toEqual([60, 20, 40, 10, 30]);
    expect(most).toBe(2);
  });

  it('rejects with the first failure and starts nothing after it', async () => {
    const started: number[] = [];
    await expect(
      mapAtOnce([1, 2, 3, 4, 5], 1, async (n) => {
        started.push(n);
        if (n === 2) throw new Error('two failed');
        return n;
      }),
    ).rejects.toThrow('two failed');
    expect(started).toEqual([1, 2]);
  });

  it('answers an empty list at once', async () => {
    expect(await mapAtOnce([], 4, async () => 1)).toEqual([]);
  });

  const tick = () => new Promise((r) => setTimeout(r, 5));

  it('runs at most the limit at a time, and every item', async () => {
    let running = 0;
    let most = 0;
    const done: number[] = [];
    await mapAtOnce([1, 2, 3, 4, 5, 6, 7], 3, async (n) => {
      most = Math.max(most, ++running);
      await tick();
      running--;
      done.push(n);
    });
    expect(most).toBe(3);
    expect(done.sort()).toEqual([1, 2, 3, 4, 5, 6, 7]);
  });

  it('starts nothing after a failure, and rejects with the first failure once the started ones settled', async () => {
    const started: number[] = [];
    let settled = 0;
    const result = mapAtOnce([1, 2, 3, 4], 2, async (n) => {
      started.push(n);
      try {
        if (n === 1) throw new Error('disk 1 failed');
        await tick();
        throw new Error(`disk ${n} stopped`);
      } finally {
        settled++;
      }
    });
    await expect(result).rejects.toThrow('disk 1 failed');
    expect(started).toEqual([1, 2]);
    expect(settled).toBe(2);
  });
});
