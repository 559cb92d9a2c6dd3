import { Backoff } from './backoff';

describe('Backoff', () => {
  it('doubles from 0.5 s up to 30 s and starts over after reset', () => {
    const backoff = new Backoff(500, 30_000, 0);
    const delays = Array.from({ length: 9 }, () => backoff.next());
    expect(delays).toEqual([500, 1000, 2000, 4000, 8000, 16000, 30000, 30000, 30000]);
    backoff.reset();
    expect(backoff.next()).toBe(500);
  });

  it('jitters downwards only, so the cap still holds', () => {
    const backoff = new Backoff(500, 30_000, 0.2, () => 1);
    expect(backoff.next()).toBe(400);
  });
});
