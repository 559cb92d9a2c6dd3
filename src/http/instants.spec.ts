import { isEventPosition, isInstant } from './instants';

describe('isInstant and isEventPosition: what new Date() and PostgreSQL both read', () => {
  it.each(['2026-11-01', '2026-11-01T12:00', '2026-11-01T12:00:00Z', '2026-11-01T12:00:00.123456Z', '2026-11-01T12:00:00+05:30', '2026-11-01T12:00:00-0800', '2026-11-01 12:00:00Z'])('takes %s', (value) => {
    expect(isInstant(value)).toBe(true);
  });

  it.each(['2026', '2026-11', '2026-W01', '2026-W01-1', '2026-305', '2026-13-01', '2026-02-30', '2026-04-31T00:00:00Z', '2026-11-01T25:00:00Z', '20261101', ' 2026-11-01', '2026-11-01T12:00:00ZZ', 20261101, null])('refuses %j', (value) => {
    expect(isInstant(value)).toBe(false);
  });

  it('takes positions within bigint and refuses those past it or of another shape', () => {
    expect(isEventPosition('00000000000000000000:00000000000000000000')).toBe(true);
    expect(isEventPosition('09223372036854775807:09223372036854775807')).toBe(true);
    expect(isEventPosition('09223372036854775808:00000000000000000000')).toBe(false);
    expect(isEventPosition('00000000000000000000:99999999999999999999')).toBe(false);
    expect(isEventPosition('1:2')).toBe(false);
    expect(isEventPosition(['00000000000000000000:00000000000000000000'])).toBe(false);
  });
});
