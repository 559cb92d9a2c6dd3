import { CalendarError, isValidTimeZone, nextSlot, parseCron, slotsBetween } from './calendar';

const iso = (d: Date | null) => d?.toISOString() ?? null;
const slots = (cron: string, tz: string, after: string, until: string, limit = 100) => slotsBetween(parseCron(cron), tz, new Date(after), new Date(until), limit).map(iso);

describe('parseCron', () => {
  it('reads values, ranges, lists, steps and names, with or without a seconds field', () => {
    const spec = parseCron('0 9-17/4 1,15 JAN-MAR mon-FRI');
    expect(spec).toMatchObject({ seconds: [0], minutes: [0], hours: [9, 13, 17], dayOr: true });
    expect([...spec.daysOfMonth].sort((a, b) => a - b)).toEqual([1, 15]);
    expect([...spec.months].sort()).toEqual([1, 2, 3]);
    expect([...spec.daysOfWeek].sort()).toEqual([1, 2, 3, 4, 5]);
    expect(parseCron('*/10 * * * * *').seconds).toEqual([0, 10, 20, 30, 40, 50]);
    expect(parseCron('5/20 * * * *').minutes).toEqual([5, 25, 45]);
    expect([...parseCron('0 0 * * 7').daysOfWeek]).toEqual([0]);
    expect(parseCron('@hourly')).toMatchObject({ minutes: [0], hours: Array.from({ length: 24 }, (_, i) => i) });
  });

  it.each([
    ['not a cron', /must have 5 fields/],
    ['* * * *', /must have 5 fields/],
    ['60 * * * *', /minute field "60" has 60, outside 0-59/],
    ['0 24 * * *', /hour field "24" has 24, outside 0-23/],
    ['5-1 * * * *', /runs backwards/],
    ['*/0 * * * *', /step below 1/],
    ['0 0 * FOO *', /month field "FOO" has "FOO", which is neither a number nor a name/],
    ['0 0 0 * *', /day of month field "0" has 0, outside 1-31/],
    // names of Object's own members, not macros: they threw a TypeError (500) before
    ['constructor', /must have 5 fields/],
    ['__proto__', /must have 5 fields/],
    ['toString', /must have 5 fields/],
  ])('refuses %j with a reason', (cron, reason) => {
    expect(() => parseCron(cron)).toThrow(CalendarError);
    expect(() => parseCron(cron)).toThrow(reason);
  });
});

describe('isValidTimeZone', () => {
  it('knows IANA zones and refuses anything else', () => {
    expect(isValidTimeZone('Europe/Berlin')).toBe(true);
    expect(isValidTimeZone('America/New_York')).toBe(true);
    expect(isValidTimeZone('UTC')).toBe(true);
    expect(isValidTimeZone('Mars/Olympus_Mons')).toBe(false);
    expect(isValidTimeZone('')).toBe(false);
  });
});

describe('slots', () => {
  it('fires every 10 seconds with a seconds field, strictly after the given instant', () => {
    expect(slots('*/10 * * * * *', 'UTC', '2025-06-01T12:00:03Z', '2025-06-01T12:00:30Z')).toEqual(['2025-06-01T12:00:10.000Z', '2025-06-01T12:00:20.000Z', '2025-06-01T12:00:30.000Z']);
    expect(iso(nextSlot(parseCron('*/10 * * * * *'), 'UTC', new Date('2025-06-01T12:00:10Z')))).toBe('2025-06-01T12:00:20.000Z');
  });

  it('reads the wall clock of the zone, and stops at the limit', () => {
    expect(slots('0 9 * * MON-FRI', 'Europe/Berlin', '2025-01-03T00:00:00Z', '2025-01-08T00:00:00Z')).toEqual(['2025-01-03T08:00:00.000Z', '2025-01-06T08:00:00.000Z', '2025-01-07T08:00:00.000Z']);
    expect(slots('* * * * *', 'UTC', '2025-01-01T00:00:00Z', '2025-01-02T00:00:00Z', 3)).toHaveLength(3);
  });

  it('runs a day when either restricted day field matches (13th or Friday)', () => {
    expect(slots('0 0 13 * FRI', 'UTC', '2025-06-01T00:00:00Z', '2025-06-15T00:00:00Z')).toEqual(['2025-06-06T00:00:00.000Z', '2025-06-13T00:00:00.000Z']);
  });

  it('finds a leap day years ahead', () => {
    expect(iso(nextSlot(parseCron('0 12 29 FEB *'), 'UTC', new Date('2025-03-01T00:00:00Z')))).toBe('2028-02-29T12:00:00.000Z');
    expect(nextSlot(parseCron('0 0 31 FEB *'), 'UTC', new Date('2025-01-01T00:00:00Z'))).toBeNull();
  });

  describe('Europe/Berlin (clocks go 02:00 → 03:00 on 30 March 2025, 03:00 → 02:00 on 26 October 2025)', () => {
    it('runs a 02:30 slot once at 03:00 on the spring-forward day', () => {
      expect(slots('30 2 * * *', 'Europe/Berlin', '2025-03-29T00:00:00Z', '2025-04-01T00:00:00Z')).toEqual([
        '2025-03-29T01:30:00.000Z', // 02:30 CET
        '2025-03-30T01:00:00.000Z', // 02:30 does not exist: 03:00 CEST
        '2025-03-31T00:30:00.000Z', // 02:30 CEST
      ]);
    });

    it('runs every slot of the skipped hour once, at the jump', () => {
      expect(slots('*/15 2 * * *', 'Europe/Berlin', '2025-03-30T00:00:00Z', '2025-03-30T12:00:00Z')).toEqual(['2025-03-30T01:00:00.000Z']);
    });

    it('never runs the repeated 02:30 twice in autumn', () => {
      expect(slots('30 2 * * *', 'Europe/Berlin', '2025-10-25T00:00:00Z', '2025-10-28T00:00:00Z')).toEqual([
        '2025-10-25T00:30:00.000Z', // 02:30 CEST
        '2025-10-26T00:30:00.000Z', // the first 02:30 (CEST); the second (01:30Z, CET) does not run
        '2025-10-27T01:30:00.000Z', // 02:30 CET
      ]);
    });

    it('runs an hourly cron 24 times on the 25-hour autumn day, not twice at 02:00', () => {
      const day = slots('0 * * * *', 'Europe/Berlin', '2025-10-25T21:59:59Z', '2025-10-26T22:59:59Z');
      expect(day).toHaveLength(24);
      expect(new Set(day).size).toBe(24);
      expect(day).toContain('2025-10-26T00:00:00.000Z'); // 02:00 CEST
      expect(day).not.toContain('2025-10-26T01:00:00.000Z'); // 02:00 CET, the repeat
      expect(day).toContain('2025-10-26T02:00:00.000Z'); // 03:00 CET
    });
  });

  describe('America/New_York (clocks go 02:00 → 03:00 on 9 March 2025, 02:00 → 01:00 on 2 November 2025)', () => {
    it('runs a 02:30 slot once at 03:00 on the spring-forward day', () => {
      expect(slots('30 2 * * *', 'America/New_York', '2025-03-08T00:00:00Z', '2025-03-11T00:00:00Z')).toEqual([
        '2025-03-08T07:30:00.000Z', // 02:30 EST
        '2025-03-09T07:00:00.000Z', // 03:00 EDT
        '2025-03-10T06:30:00.000Z', // 02:30 EDT
      ]);
    });

    it('never runs the repeated 01:30 twice in autumn', () => {
      expect(slots('30 1 * * *', 'America/New_York', '2025-11-01T12:00:00Z', '2025-11-04T00:00:00Z')).toEqual([
        '2025-11-02T05:30:00.000Z', // the first 01:30 (EDT); the second (06:30Z, EST) does not run
        '2025-11-03T06:30:00.000Z', // 01:30 EST
      ]);
    });

    it('does not run a slot again when asked from inside the repeated hour', () => {
      // 06:15Z reads 01:15 EST, the second time round: the 01:30 of that day already ran at 05:30Z.
      expect(iso(nextSlot(parseCron('30 1 * * *'), 'America/New_York', new Date('2025-11-02T06:15:00Z')))).toBe('2025-11-03T06:30:00.000Z');
    });

    it('runs every 10 seconds straight through the spring-forward jump without a burst', () => {
      const around = slots('*/10 * * * * *', 'America/New_York', '2025-03-09T06:59:40Z', '2025-03-09T07:00:20Z');
      expect(around).toEqual(['2025-03-09T06:59:50.000Z', '2025-03-09T07:00:00.000Z', '2025-03-09T07:00:10.000Z', '2025-03-09T07:00:20.000Z']);
    });
  });
});
