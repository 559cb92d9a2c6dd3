/** How a repository's points grew, and when at that pace they fill the filesystem they are on. Pure: the caller brings the samples and the clock. */

const DAY_MS = 86_400_000;
/** The history the estimate reads: long enough to see through a week's rhythm of fulls and prunes, short enough to follow a change of policy. */
export const ESTIMATE_WINDOW_DAYS = 30;
/** Less than an hour of history is one backup's burst, not a trend. */
export const MIN_SPAN_MS = 3_600_000;
/** Further out than this a date says nothing an operator can plan by (and Date cannot hold what a crawl of bytes a day would give). */
export const HORIZON_DAYS = 36_500;

export interface UsageSample {
  at: Date;
  usedBytes: number;
}

export interface UsageEstimate {
  /** Least-squares slope of the samples' used bytes over time; null with fewer than two samples or less than an hour between them. */
  growthBytesPerDay: number | null;
  /** When the points, growing at that slope, take up the free space; null when they do not grow, the free space is unknown, or it is past the horizon. */
  estimatedFullAt: string | null;
}

/** Ordinary least squares over (time, bytes); time in days from the first sample, which keeps the sums small enough to stay exact. */
export function growthBytesPerDay(samples: UsageSample[]): number | null {
  if (samples.length < 2) return null;
  const times = samples.map((s) => s.at.getTime());
  const first = Math.min(...times);
  if (Math.max(...times) - first < MIN_SPAN_MS) return null;
  const xs = times.map((t) => (t - first) / DAY_MS);
  const meanX = xs.reduce((a, x) => a + x, 0) / xs.length;
  const meanY = samples.reduce((a, s) => a + s.usedBytes, 0) / samples.length;
  let sxy = 0;
  let sxx = 0;
  samples.forEach((s, i) => {
    sxy += (xs[i] - meanX) * (s.usedBytes - meanY);
    sxx += (xs[i] - meanX) ** 2;
  });
  return sxy / sxx;
}

/** `freeBytes`: what the filesystem has left for the points to grow into, null when it could not be measured. */
export function estimateUsage(samples: UsageSample[], freeBytes: number | null, now: Date): UsageEstimate {
  const slope = growthBytesPerDay(samples);
  const growth = slope === null ? null : Math.round(slope);
  if (slope === null || slope <= 0 || freeBytes === null) return { growthBytesPerDay: growth, estimatedFullAt: null };
  const days = Math.max(0, freeBytes) / slope;
  if (days > HORIZON_DAYS) return { growthBytesPerDay: growth, estimatedFullAt: null };
  // to the second: an estimate has no milliseconds worth showing
  const at = Math.round((now.getTime() + days * DAY_MS) / 1000) * 1000;
  return { growthBytesPerDay: growth, estimatedFullAt: new Date(at).toISOString() };
}
