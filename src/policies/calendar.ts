/**
 * Cron calendars read on a time zone's wall clock, with nothing but Intl. A slot is a wall-clock time
 * the cron names; it becomes an instant as the zone's clock says: a time skipped by a spring-forward
 * runs once, when the clock jumps (02:30 → 03:00), and a time the autumn repeats runs only the first
 * time it is read. Pure: the same expression, zone and instant always give the same slots.
 */

export class CalendarError extends Error {
  constructor(message: string) {
    super(message);
    this.name = 'CalendarError';
  }
}

export interface CronSpec {
  seconds: number[];
  minutes: number[];
  hours: number[];
  daysOfMonth: Set<number>;
  months: Set<number>;
  daysOfWeek: Set<number>;
  /** Vixie cron: when both day fields are restricted, a day matching either runs. */
  dayOr: boolean;
}

const MONTHS = ['JAN', 'FEB', 'MAR', 'APR', 'MAY', 'JUN', 'JUL', 'AUG', 'SEP', 'OCT', 'NOV', 'DEC'];
const DAYS = ['SUN', 'MON', 'TUE', 'WED', 'THU', 'FRI', 'SAT'];
const MACROS: Record<string, string> = {
  '@yearly': '0 0 1 1 *',
  '@annually': '0 0 1 1 *',
  '@monthly': '0 0 1 * *',
  '@weekly': '0 0 * * 0',
  '@daily': '0 0 * * *',
  '@midnight': '0 0 * * *',
  '@hourly': '0 * * * *',
};

interface FieldDef {
  name: string;
  min: number;
  max: number;
  names?: string[];
  /** Where the first name stands for (JAN = 1, SUN = 0). */
  nameBase?: number;
}

const SECOND: FieldDef = { name: 'second', min: 0, max: 59 };
const MINUTE: FieldDef = { name: 'minute', min: 0, max: 59 };
const HOUR: FieldDef = { name: 'hour', min: 0, max: 23 };
const DOM: FieldDef = { name: 'day of month', min: 1, max: 31 };
const MONTH: FieldDef = { name: 'month', min: 1, max: 12, names: MONTHS, nameBase: 1 };
/** 7 is Sunday as well, as in every cron. */
const DOW: FieldDef = { name: 'day of week', min: 0, max: 7, names: DAYS, nameBase: 0 };

/** `m h dom mon dow`, or `s m h dom mon dow`; `*`, `a`, `a-b`, `*\/n`, `a-b/n`, `a/n`, lists, month and day names, @daily and the like. */
export function parseCron(expression: string): CronSpec {
  const macro = expression.trim().toLowerCase();
  // own keys only: "constructor" or "__proto__" found Object's and threw a TypeError (a 500) where a cron error belongs
  const text = Object.hasOwn(MACROS, macro) ? MACROS[macro] : expression.trim();
  const fields = text.split(/\s+/).filter(Boolean);
  if (fields.length !== 5 && fields.length !== 6) {
    throw new CalendarError(`cron "${expression}" must have 5 fields (minute hour day-of-month month day-of-week) or 6 with a leading seconds field, not ${fields.length}`);
  }
  const [sec, min, hour, dom, month, dow] = fields.length === 6 ? fields : ['0', ...fields];
  const days = parseField(dow, DOW, expression);
  if (days.has(7)) {
    days.delete(7);
    days.add(0);
  }
  return {
    seconds: sorted(parseField(sec, SECOND, expression)),
    minutes: sorted(parseField(min, MINUTE, expression)),
    hours: sorted(parseField(hour, HOUR, expression)),
    daysOfMonth: parseField(dom, DOM, expression),
    months: parseField(month, MONTH, expression),
    daysOfWeek: days,
    dayOr: !isStar(dom) && !isStar(dow),
  };
}

function isStar(field: string): boolean {
  return field === '*' || field === '?';
}

function sorted(values: Set<number>): number[] {
  return [...values].sort((a, b) => a - b);
}

function parseField(field: string, def: FieldDef, expression: string): Set<number> {
  const values = new Set<number>();
  const bad = (why: string) => new CalendarError(`cron "${expression}": ${def.name} field "${field}" ${why}`);
  for (const part of field.split(',')) {
    const match = /^([^/]+)(?:\/(\d+))?$/.exec(part);
    if (!match) throw bad('is not a value, range, list or step');
    const [, range, stepText] = match;
    const step = stepText === undefined ? 1 : Number(stepText);
    if (!Number.isInteger(step) || step < 1) throw bad('has a step below 1');
    let from: number;
    let to: number;
    if (range === '*' || range === '?') {
      [from, to] = [def.min, def.max];
    } else if (range.includes('-')) {
      const [a, b, ...rest] = range.split('-');
      if (rest.length) throw bad('has a malformed range');
      [from, to] = [value(a, def, bad), value(b, def, bad)];
      if (from > to) throw bad(`has a range that runs backwards (${from} > ${to})`);
    } else {
      from = value(range, def, bad);
      to = stepText === undefined ? from : def.max;
    }
    for (let v = from; v <= to; v += step) values.add(v);
  }
  return values;
}

function value(text: string, def: FieldDef, bad: (why: string) => CalendarError): number {
  const upper = text.toUpperCase();
  const named = def.names?.indexOf(upper) ?? -1;
  if (named >= 0) return named + def.nameBase!;
  if (!/^\d+$/.test(text)) throw bad(`has "${text}", which is neither a number${def.names ? ' nor a name' : ''}`);
  const n = Number(text);
  if (n < def.min || n > def.max) throw bad(`has ${n}, outside ${def.min}-${def.max}`);
  return n;
}

const formatters = new Map<string, Intl.DateTimeFormat>();

function formatter(timeZone: string): Intl.DateTimeFormat {
  let f = formatters.get(timeZone);
  if (!f) {
    f = new Intl.DateTimeFormat('en-US', { timeZone, hourCycle: 'h23', year: 'numeric', month: 'numeric', day: 'numeric', hour: 'numeric', minute: 'numeric', second: 'numeric' });
    formatters.set(timeZone, f);
  }
  return f;
}

/** True for a zone Intl knows by its IANA name (Europe/Berlin, UTC, America/New_York). */
export function isValidTimeZone(timeZone: string): boolean {
  if (!timeZone || !/^[A-Za-z0-9_+\-/]+$/.test(timeZone)) return false;
  try {
    formatter(timeZone);
    return true;
  } catch {
    return false;
  }
}

/** The zone's wall clock at an instant, as milliseconds of a UTC calendar (a "wall" number). */
function wallOf(instant: number, timeZone: string): number {
  const parts: Record<string, number> = {};
  for (const p of formatter(timeZone).formatToParts(new Date(instant))) if (p.type !== 'literal') parts[p.type] = Number(p.value);
  return Date.UTC(parts.year, parts.month - 1, parts.day, parts.hour, parts.minute, parts.second) + (instant - Math.floor(instant / 1000) * 1000);
}

/** The zone's offset from UTC at an instant, in milliseconds. */
function offsetAt(instant: number, timeZone: string): number {
  return wallOf(instant, timeZone) - instant;
}

const DAY_MS = 86_400_000;

/**
 * The instant a wall-clock time is read first in the zone. A time the clock skips (a spring-forward
 * gap) has no reading: it becomes the instant the clock jumps, the first wall time after the gap.
 */
export function instantOfWall(wall: number, timeZone: string): number {
  const offsets = [...new Set([offsetAt(wall - DAY_MS, timeZone), offsetAt(wall, timeZone), offsetAt(wall + DAY_MS, timeZone)])];
  const readings = offsets.map((o) => wall - o).filter((u) => offsetAt(u, timeZone) === wall - u);
  if (readings.length) return Math.min(...readings);
  // In a gap: the jump lies between the instants the wall time has under the larger and the smaller offset.
  let lo = wall - Math.max(...offsets);
  let hi = wall - Math.min(...offsets);
  const before = offsetAt(lo, timeZone);
  while (hi - lo > 1000) {
    const mid = Math.floor((lo + hi) / 2000) * 1000;
    if (offsetAt(mid, timeZone) === before) lo = mid;
    else hi = mid;
  }
  return hi;
}

/** How far ahead a cron with no matching day (30 February) is searched: a leap-day cron fits in 8 years. */
const SEARCH_DAYS = 8 * 366;

/** The first slot strictly after `after`, or null when the cron never matches within the search horizon. */
export function nextSlot(spec: CronSpec, timeZone: string, after: Date): Date | null {
  return slotsAfter(spec, timeZone, after, 1)[0] ?? null;
}

/** Up to `limit` slots strictly after `after` and at or before `until`, oldest first. */
export function slotsBetween(spec: CronSpec, timeZone: string, after: Date, until: Date, limit: number): Date[] {
  return slotsAfter(spec, timeZone, after, limit, until.getTime());
}

function slotsAfter(spec: CronSpec, timeZone: string, after: Date, limit: number, until = Infinity): Date[] {
  const found: Date[] = [];
  const from = after.getTime();
  // Start a day early on the wall clock: a gap moves a slot later, never earlier, than its wall time.
  const startDay = Math.floor((wallOf(from, timeZone) - DAY_MS) / DAY_MS) * DAY_MS;
  const lastDay = until === Infinity ? Infinity : wallOf(until, timeZone) + DAY_MS;
  let last = from;
  for (let day = startDay, n = 0; n < SEARCH_DAYS && day <= lastDay; day += DAY_MS, n++) {
    if (!dayMatches(spec, new Date(day))) continue;
    const toInstant = wallToInstant(day, timeZone);
    for (const h of spec.hours) {
      for (const m of spec.minutes) {
        for (const s of spec.seconds) {
          const instant = toInstant(day + h * 3_600_000 + m * 60_000 + s * 1000);
          // Strictly increasing: a skipped time that lands on the jump, and a repeated time read the second time, run once.
          if (instant <= last) continue;
          if (instant > until) return found;
          found.push(new Date(instant));
          last = instant;
          if (found.length >= limit) return found;
        }
      }
    }
  }
  return found;
}

/** Offsets stay within ±14 h: a day whose every possible instant has one offset has no transition, and needs no search. */
function wallToInstant(day: number, timeZone: string): (wall: number) => number {
  const offset = offsetAt(day - 14 * 3_600_000, timeZone);
  if (offset === offsetAt(day + DAY_MS + 14 * 3_600_000, timeZone)) return (wall) => wall - offset;
  return (wall) => instantOfWall(wall, timeZone);
}

function dayMatches(spec: CronSpec, day: Date): boolean {
  if (!spec.months.has(day.getUTCMonth() + 1)) return false;
  const dom = spec.daysOfMonth.has(day.getUTCDate());
  const dow = spec.daysOfWeek.has(day.getUTCDay());
  return spec.dayOr ? dom || dow : dom && dow;
}
