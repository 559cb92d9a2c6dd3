import { jobsPerDay } from './backup-jobs-report.query';

const vm = (vmId: string, days: { day: string; successes: number; failures: number }[]) => ({ vmId, successes: 0, failures: 0, bytes: 0, averageDurationMs: 0, longestDurationMs: 0, days });

describe('jobs per day', () => {
  it('sums the days of the VMs it is given, in day order, and nothing of a VM left out (a tenant sees its own)', () => {
    const a = vm('a', [{ day: '2026-11-26', successes: 2, failures: 1 }, { day: '2026-11-27', successes: 1, failures: 0 }]);
    const b = vm('b', [{ day: '2026-11-25', successes: 0, failures: 3 }, { day: '2026-11-27', successes: 4, failures: 1 }]);
    expect(jobsPerDay([b, a])).toEqual([
      { day: '2026-11-25', successes: 0, failures: 3 },
      { day: '2026-11-26', successes: 2, failures: 1 },
      { day: '2026-11-27', successes: 5, failures: 1 },
    ]);
    expect(jobsPerDay([a])).toEqual(a.days);
    expect(jobsPerDay([])).toEqual([]);
  });
});
