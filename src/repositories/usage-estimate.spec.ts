import { estimateUsage, growthBytesPerDay, UsageSample } from './usage-estimate';

const GiB = 2 ** 30;
const now = new Date('2025-03-31T12:00:00Z');
const daysAgo = (d: number) => new Date(now.getTime() - d * 86_400_000);
/** One sample a day for `days` days up to now, each `perDay` more than the one before. */
const daily = (days: number, start: number, perDay: number): UsageSample[] => Array.from({ length: days }, (_, i) => ({ at: daysAgo(days - 1 - i), usedBytes: start + i * perDay }));

describe('repository usage estimate', () => {
  it('growing: the slope is the growth a day, and the points fill the free space at that pace', () => {
    const samples = daily(30, 100 * GiB, 2 * GiB);
    expect(growthBytesPerDay(samples)).toBeCloseTo(2 * GiB, 3);
    expect(estimateUsage(samples, 50 * GiB, now)).toEqual({ growthBytesPerDay: 2 * GiB, estimatedFullAt: '2025-04-25T12:00:00.000Z' });
  });

  it('growing unevenly: least squares, not the first and last sample', () => {
    // a full every 7 days (10 GiB) between daily incrementals (1 GiB) over two weeks: the line through them, not the endpoints' 11 GiB/13 days
    const samples: UsageSample[] = [];
    let used = 0;
    for (let d = 13; d >= 0; d--) samples.push({ at: daysAgo(d), usedBytes: (used += d % 7 === 0 ? 10 * GiB : GiB) });
    const endpoints = (samples.at(-1)!.usedBytes - samples[0].usedBytes) / 13;
    const slope = growthBytesPerDay(samples)!;
    expect(slope).toBeGreaterThan(GiB);
    expect(Math.abs(slope - endpoints)).toBeGreaterThan(GiB / 100);
  });

  it('flat: no growth, so no date', () => {
    expect(estimateUsage(daily(10, 80 * GiB, 0), 50 * GiB, now)).toEqual({ growthBytesPerDay: 0, estimatedFullAt: null });
  });

  it('shrinking (retention removes more than backups add): a negative growth and no date', () => {
    const estimate = estimateUsage(daily(10, 80 * GiB, -GiB), 50 * GiB, now);
    expect(estimate).toEqual({ growthBytesPerDay: -GiB, estimatedFullAt: null });
  });

  it('one sample, none, or samples less than an hour apart: no slope and no date', () => {
    expect(estimateUsage([{ at: daysAgo(3), usedBytes: GiB }], 50 * GiB, now)).toEqual({ growthBytesPerDay: null, estimatedFullAt: null });
    expect(estimateUsage([], 50 * GiB, now)).toEqual({ growthBytesPerDay: null, estimatedFullAt: null });
    const burst = [
      { at: new Date(now.getTime() - 59 * 60_000), usedBytes: GiB },
      { at: now, usedBytes: 5 * GiB },
    ];
    expect(estimateUsage(burst, 50 * GiB, now)).toEqual({ growthBytesPerDay: null, estimatedFullAt: null });
    expect(growthBytesPerDay([{ at: new Date(now.getTime() - 3_600_000), usedBytes: GiB }, { at: now, usedBytes: 2 * GiB }])).toBeCloseTo(24 * GiB, 3);
  });

  it('free space unknown (the filesystem could not be measured): the growth, but no date', () => {
    expect(estimateUsage(daily(30, 100 * GiB, 2 * GiB), null, now)).toEqual({ growthBytesPerDay: 2 * GiB, estimatedFullAt: null });
  });

  it('no free space left: full now; a crawl past the horizon: no date', () => {
    expect(estimateUsage(daily(30, 100 * GiB, 2 * GiB), 0, now).estimatedFullAt).toBe(now.toISOString());
    expect(estimateUsage(daily(30, 100 * GiB, 1), 2 ** 50, now)).toEqual({ growthBytesPerDay: 1, estimatedFullAt: null });
  });

  it('samples in any order give the same slope', () => {
    const samples = daily(30, 100 * GiB, 2 * GiB);
    expect(growthBytesPerDay([...samples].reverse())).toBeCloseTo(growthBytesPerDay(samples)!, 3);
  });
});
