import { chainPruneMarks, computePrune, deletionOrder, isoWeek, PruneMark, RetentionRules, wholeChainsOnly } from './prune';

/** Points named by their time, as PBS names snapshots. */
const points = (...times: string[]) => times.map((t) => ({ restorePointId: t, createdAt: t }));
/** Oldest first, like PBS's tests list them. */
const kept = (marks: PruneMark[]) => marks.filter((m) => m.keep).map((m) => m.restorePointId).reverse();
const removed = (marks: PruneMark[]) => marks.filter((m) => !m.keep).map((m) => m.restorePointId).reverse();
const prune = (list: ReturnType<typeof points>, rules: RetentionRules, zone = 'UTC') => computePrune(list, rules, zone);

describe('prune rules: the cases of PBS tests/prune.rs', () => {
  it('keep-hourly keeps the newest point of each hour', () => {
    const list = points('2019-11-15T09:39:15Z', '2019-11-15T10:49:15Z', '2019-11-15T10:59:15Z', '2019-11-15T11:39:15Z', '2019-11-15T11:49:15Z', '2019-11-15T11:59:15Z');
    expect(removed(prune(list, { keepHourly: 3 }))).toEqual(['2019-11-15T10:49:15Z', '2019-11-15T11:39:15Z', '2019-11-15T11:49:15Z']);
    expect(kept(prune(list, { keepHourly: 2 }))).toEqual(['2019-11-15T10:59:15Z', '2019-11-15T11:59:15Z']);
  });

  it('combines rules: each fills only periods no earlier rule kept a point of (simple2)', () => {
    const list = points(
      '2018-11-15T11:59:15Z',
      '2019-11-15T11:59:15Z',
      '2019-11-21T11:59:15Z',
      '2019-11-22T11:59:15Z',
      '2019-11-29T11:59:15Z',
      '2019-12-01T11:59:15Z',
      '2019-12-02T11:59:15Z',
      '2019-12-03T11:59:15Z',
      '2019-12-04T11:59:15Z',
    );
    expect(kept(prune(list, { keepDaily: 1 }))).toEqual(['2019-12-04T11:59:15Z']);
    expect(kept(prune(list, { keepLast: 1, keepDaily: 1 }))).toEqual(['2019-12-03T11:59:15Z', '2019-12-04T11:59:15Z']);
    expect(kept(prune(list, { keepDaily: 1, keepWeekly: 1 }))).toEqual(['2019-12-01T11:59:15Z', '2019-12-04T11:59:15Z']);
    expect(kept(prune(list, { keepDaily: 1, keepWeekly: 1, keepMonthly: 1 }))).toEqual(['2019-11-22T11:59:15Z', '2019-12-01T11:59:15Z', '2019-12-04T11:59:15Z']);
    expect(kept(prune(list, { keepMonthly: 1, keepYearly: 1 }))).toEqual(['2018-11-15T11:59:15Z', '2019-12-04T11:59:15Z']);
  });

  it('keep-last, daily, weekly, monthly, yearly alone and mixed (simple)', () => {
    const list = points('2019-12-02T11:59:15Z', '2019-12-03T11:59:15Z', '2019-12-04T11:59:15Z', '2019-12-04T12:59:15Z');
    const threeOldest = ['2019-12-02T11:59:15Z', '2019-12-03T11:59:15Z', '2019-12-04T11:59:15Z'];
    expect(removed(prune(list, { keepLast: 4 }))).toEqual([]);
    expect(removed(prune(list, { keepLast: 3 }))).toEqual(['2019-12-02T11:59:15Z']);
    expect(removed(prune(list, { keepLast: 2 }))).toEqual(['2019-12-02T11:59:15Z', '2019-12-03T11:59:15Z']);
    expect(removed(prune(list, { keepLast: 1 }))).toEqual(threeOldest);
    expect(removed(prune(list, { keepLast: 2, keepDaily: 2 }))).toEqual([]);
    expect(removed(prune(list, { keepDaily: 3 }))).toEqual(['2019-12-04T11:59:15Z']);
    expect(removed(prune(list, { keepDaily: 2 }))).toEqual(['2019-12-02T11:59:15Z', '2019-12-04T11:59:15Z']);
    expect(removed(prune(list, { keepWeekly: 5 }))).toEqual(threeOldest);
    expect(removed(prune(list, { keepDaily: 1, keepWeekly: 5 }))).toEqual(threeOldest);
    expect(removed(prune(list, { keepMonthly: 6 }))).toEqual(threeOldest);
    expect(removed(prune(list, { keepYearly: 7 }))).toEqual(threeOldest);
    expect(removed(prune(list, { keepWeekly: 5, keepMonthly: 6, keepYearly: 7 }))).toEqual(threeOldest);
  });

  it('keeps everything when no rule keeps anything, as the PBS prune API does (keep-last 0 alone)', () => {
    const list = points('2019-12-02T11:59:15Z', '2019-12-03T11:59:15Z');
    expect(prune(list, { keepLast: 0 }).map((m) => m.keep && m.keptBy)).toEqual(['keep-all', 'keep-all']);
    expect(prune(list, {}).every((m) => m.keep)).toBe(true);
  });
});

describe('prune rules: every decision names its rule', () => {
  it('names the rule that kept a point, the rule whose period already had a newer point, and no-rule past every count', () => {
    const list = points('2024-03-01T10:00:00Z', '2024-03-02T09:00:00Z', '2024-03-02T10:00:00Z', '2024-03-03T08:00:00Z', '2024-03-03T09:00:00Z', '2024-03-03T10:00:00Z');
    const marks = prune(list, { keepLast: 1, keepDaily: 1 });
    expect(marks.map((m) => [m.restorePointId, m.keep ? `kept:${m.keptBy}` : `pruned:${m.prunedBy}`])).toEqual([
      ['2024-03-03T10:00:00Z', 'kept:keep-last'],
      // 2024/03/03 already holds the keep-last point, so keep-daily goes on to the 2nd and stops after one day
      ['2024-03-03T09:00:00Z', 'pruned:no-rule'],
      ['2024-03-03T08:00:00Z', 'pruned:no-rule'],
      ['2024-03-02T10:00:00Z', 'kept:keep-daily'],
      // same day as the point keep-daily just kept
      ['2024-03-02T09:00:00Z', 'pruned:keep-daily'],
      // a new day, but keep-daily has used up its one period
      ['2024-03-01T10:00:00Z', 'pruned:no-rule'],
    ]);
    const daily = prune(list, { keepDaily: 3 });
    expect(daily.find((m) => m.restorePointId === '2024-03-03T09:00:00Z')).toMatchObject({ keep: false, prunedBy: 'keep-daily', period: '2024/03/03' });
    expect(daily.find((m) => m.restorePointId === '2024-03-01T10:00:00Z')).toMatchObject({ keep: true, keptBy: 'keep-daily', period: '2024/03/01' });
  });

  it('is deterministic: ties in time are ordered by id, whatever the input order', () => {
    const a = [
      { restorePointId: 'b', createdAt: '2024-03-03T10:00:00Z' },
      { restorePointId: 'a', createdAt: '2024-03-03T10:00:00Z' },
    ];
    expect(kept(prune(a, { keepLast: 1 }))).toEqual(['b']);
    expect(kept(prune([...a].reverse(), { keepLast: 1 }))).toEqual(['b']);
  });

  it('keep-last 2 + keep-daily 3 over twelve backups eight hours apart', () => {
    const list = Array.from({ length: 12 }, (_, i) => new Date(Date.parse('2024-05-01T00:30:00Z') + i * 8 * 3_600_000).toISOString()).map((t) => ({ restorePointId: t, createdAt: t }));
    // days 1..4, three points each (00:30, 08:30, 16:30): the newest two by keep-last, then the newest of days 3, 2, 1
    expect(kept(prune(list, { keepLast: 2, keepDaily: 3 }))).toEqual(['2024-05-01T16:30:00.000Z', '2024-05-02T16:30:00.000Z', '2024-05-03T16:30:00.000Z', '2024-05-04T08:30:00.000Z', '2024-05-04T16:30:00.000Z']);
  });
});

describe('prune rules: periods on the wall clock of the policy time zone', () => {
  it('reads days in the zone: 23:30 UTC is already tomorrow in Berlin', () => {
    const list = points('2024-05-01T21:30:00Z', '2024-05-01T23:30:00Z');
    expect(kept(prune(list, { keepDaily: 2 }, 'UTC'))).toEqual(['2024-05-01T23:30:00Z']);
    expect(kept(prune(list, { keepDaily: 2 }, 'Europe/Berlin'))).toEqual(['2024-05-01T21:30:00Z', '2024-05-01T23:30:00Z']);
  });

  it('Europe/Berlin autumn day: the repeated 02:xx hour is one hourly period, the 25-hour day one daily period', () => {
    // 2024-10-27: 02:30 CEST = 00:30Z, 02:30 CET = 01:30Z
    const list = points('2024-10-26T22:30:00Z', '2024-10-27T00:30:00Z', '2024-10-27T01:30:00Z', '2024-10-27T22:30:00Z');
    const hourly = prune(list, { keepHourly: 10 }, 'Europe/Berlin');
    expect(removed(hourly)).toEqual(['2024-10-27T00:30:00Z']);
    expect(hourly.find((m) => m.restorePointId === '2024-10-27T00:30:00Z')).toMatchObject({ keep: false, prunedBy: 'keep-hourly', period: '2024/10/27/02' });
    // 22:30Z on the 26th is 00:30 CEST on the 27th and 22:30Z on the 27th is 23:30 CET: one day, one point kept
    expect(kept(prune(list, { keepDaily: 10 }, 'Europe/Berlin'))).toEqual(['2024-10-27T22:30:00Z']);
    expect(kept(prune(list, { keepHourly: 10 }, 'UTC'))).toEqual(list.map((p) => p.restorePointId));
  });

  it('Europe/Berlin spring day: 01:59 CET and 03:00 CEST are one hour apart but two periods; the 23-hour day is one', () => {
    const list = points('2024-03-30T23:00:00Z', '2024-03-31T00:59:00Z', '2024-03-31T01:00:00Z', '2024-03-31T21:59:00Z');
    const hourly = prune(list, { keepHourly: 10 }, 'Europe/Berlin');
    expect(hourly.map((m) => m.period)).toEqual(['2024/03/31/23', '2024/03/31/03', '2024/03/31/01', '2024/03/31/00']);
    expect(kept(prune(list, { keepDaily: 10 }, 'Europe/Berlin'))).toEqual(['2024-03-31T21:59:00Z']);
  });

  it('America/New_York autumn day: 01:xx EDT and 01:xx EST share the hour; days follow local midnight', () => {
    // 2024-11-03: 01:30 EDT = 05:30Z, 01:30 EST = 06:30Z; local midnight is 04:00Z (EDT) that day and 05:00Z the next
    const list = points('2024-11-03T03:30:00Z', '2024-11-03T05:30:00Z', '2024-11-03T06:30:00Z', '2024-11-04T04:30:00Z');
    expect(removed(prune(list, { keepHourly: 10 }, 'America/New_York'))).toEqual(['2024-11-03T05:30:00Z']);
    // 03:30Z is Nov 2 23:30 EDT, 04:30Z on Nov 4 is Nov 3 23:30 EST
    expect(kept(prune(list, { keepDaily: 10 }, 'America/New_York'))).toEqual(['2024-11-03T03:30:00Z', '2024-11-04T04:30:00Z']);
  });

  it('America/New_York spring day: 01:59 EST then 03:00 EDT', () => {
    const list = points('2024-03-10T06:59:00Z', '2024-03-10T07:00:00Z');
    expect(prune(list, { keepHourly: 10 }, 'America/New_York').map((m) => m.period)).toEqual(['2024/03/10/03', '2024/03/10/01']);
  });

  it('weeks are ISO weeks (Monday start, the year of the Thursday), read in the zone', () => {
    expect(isoWeek({ year: 2019, month: 12, day: 30 })).toBe('2020/01');
    expect(isoWeek({ year: 2021, month: 1, day: 3 })).toBe('2020/53');
    expect(isoWeek({ year: 2024, month: 12, day: 29 })).toBe('2024/52');
    expect(isoWeek({ year: 2024, month: 12, day: 30 })).toBe('2025/01');
    // Sunday 23:30Z is Monday in Berlin: two weeks there, one in UTC
    const list = points('2024-06-09T20:00:00Z', '2024-06-09T23:30:00Z');
    expect(kept(prune(list, { keepWeekly: 5 }, 'UTC'))).toEqual(['2024-06-09T23:30:00Z']);
    expect(kept(prune(list, { keepWeekly: 5 }, 'Europe/Berlin'))).toEqual(['2024-06-09T20:00:00Z', '2024-06-09T23:30:00Z']);
  });

  it('in an immutable repository keeps a pruned point while any point of its chain is kept (whole-chain)', () => {
    const at = (h: number) => new Date(Date.UTC(2026, 0, 1, h)).toISOString();
    const points = [
      { restorePointId: 'a1', createdAt: at(0), type: 'full' as const },
      { restorePointId: 'a2', createdAt: at(1), type: 'incremental' as const },
      { restorePointId: 'b1', createdAt: at(2), type: 'full' as const },
      { restorePointId: 'b2', createdAt: at(3), type: 'incremental' as const },
      { restorePointId: 'b3', createdAt: at(4), type: 'incremental' as const },
    ];
    const marks = computePrune(points, { keepLast: 1 }, 'UTC');
    expect(marks.map((m) => [m.restorePointId, m.keep])).toEqual([['b3', true], ['b2', false], ['b1', false], ['a2', false], ['a1', false]]);
    // chain b goes on (b3 is kept), so all of it stays; chain a is wholly pruned and goes
    expect(wholeChainsOnly(points, marks).map((m) => [m.restorePointId, m.keep && m.keptBy])).toEqual([
      ['b3', 'keep-last'],
      ['b2', 'whole-chain'],
      ['b1', 'whole-chain'],
      ['a2', false],
      ['a1', false],
    ]);
  });
});

describe('a chain as retention decides it (policies and sync jobs alike)', () => {
  const point = (id: string, day: number, type: 'full' | 'incremental') => ({ restorePointId: id, createdAt: `2026-03-${String(day).padStart(2, '0')}T04:00:00Z`, type });
  const chain = { points: [point('a', 1, 'full'), point('b', 2, 'incremental'), point('c', 3, 'full'), point('d', 4, 'incremental')], pending: null, recycled: {} };

  it('leaves out the point being deleted, and deletes the pruned oldest first', () => {
    const marks = chainPruneMarks({ ...chain, pending: { restorePointId: 'd' } }, { keepLast: 1 }, 'UTC', false);
    expect(marks.map((m) => [m.restorePointId, m.keep])).toEqual([['c', true], ['b', false], ['a', false]]);
    expect(deletionOrder(marks, false).map((m) => m.restorePointId)).toEqual(['a', 'b']);
  });

  it('leaves out the points in the recycle bin: they are neither kept nor pruned again', () => {
    const marks = chainPruneMarks({ ...chain, recycled: { d: { recycledAt: 'x', purgeAfter: 'y' }, a: { recycledAt: 'x', purgeAfter: 'y' } } }, { keepLast: 1 }, 'UTC', false);
    expect(marks.map((m) => [m.restorePointId, m.keep])).toEqual([['c', true], ['b', false]]);
  });

  it('in an immutable repository keeps whole chains and deletes them newest first', () => {
    const marks = chainPruneMarks(chain, { keepLast: 1 }, 'UTC', true);
    expect(marks.map((m) => [m.restorePointId, m.keep])).toEqual([['d', true], ['c', true], ['b', false], ['a', false]]);
    expect(deletionOrder(marks, true).map((m) => m.restorePointId)).toEqual(['b', 'a']);
  });
});
