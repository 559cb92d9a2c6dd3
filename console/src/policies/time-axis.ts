export const MINUTE_MS = 60_000;
export const HOUR_MS = 3_600_000;
export const DAY_MS = 86_400_000;

const QUARTER = 15 * MINUTE_MS;
/** Tick spacings to choose from, the first that leaves room for a label; a day's and longer fall on midnights. */
const STEPS = [MINUTE_MS, 5 * MINUTE_MS, QUARTER, 30 * MINUTE_MS, HOUR_MS, 3 * HOUR_MS, 6 * HOUR_MS, 12 * HOUR_MS, DAY_MS, 2 * DAY_MS, 7 * DAY_MS, 30 * DAY_MS, 91 * DAY_MS, 365 * DAY_MS];

interface Wall {
  date: string;
  year: number;
  month: number;
  day: number;
  minuteOfDay: number;
}

/** The wall clock in a time zone (the browser's without one), which is where an operator reads days and hours. */
function wallClock(timeZone?: string): (t: number) => Wall {
  const format = new Intl.DateTimeFormat('en-US', { timeZone, year: 'numeric', month: 'numeric', day: 'numeric', hour: 'numeric', minute: 'numeric', hourCycle: 'h23' });
  return (t) => {
    const p = Object.fromEntries(format.formatToParts(new Date(t)).map((x) => [x.type, x.value]));
    return { date: `${p.year}-${p.month}-${p.day}`, year: +p.year, month: +p.month, day: +p.day, minuteOfDay: +p.hour * 60 + +p.minute };
  };
}

/**
 * Where each day starts in the time zone, within [from, to]. Every zone's offset is a multiple of 15 minutes, so a
 * day starts on a quarter hour of UTC; a day lasts 23 to 25 hours, so after one start the next is searched from 23 h on.
 */
export function dayStarts(from: number, to: number, timeZone?: string): number[] {
  const wall = wallClock(timeZone);
  const starts: number[] = [];
  let t = Math.floor(from / QUARTER) * QUARTER;
  let date = wall(t).date;
  while (t <= to) {
    const next = t + QUARTER;
    const d = wall(next).date;
    if (d !== date) {
      if (next >= from && next <= to) starts.push(next);
      date = d;
      t = next + 23 * HOUR_MS - QUARTER;
      date = wall(t).date;
    } else t = next;
  }
  return starts;
}

const DAY_LABEL: Intl.DateTimeFormatOptions = { month: 'short', day: 'numeric' };

/** Ticks for a time axis `width` pixels wide, each with its label, at least `gap` pixels apart. */
export function timeTicks(from: number, to: number, width: number, timeZone?: string, gap = 90): { t: number; label: string }[] {
  const span = Math.max(1, to - from);
  const step = STEPS.find((s) => (s / span) * width >= gap) ?? STEPS[STEPS.length - 1];
  if (step >= DAY_MS) {
    const wall = wallClock(timeZone);
    const label = new Intl.DateTimeFormat(undefined, { timeZone, ...(step >= 91 * DAY_MS ? { year: 'numeric', month: 'short' } : DAY_LABEL) });
    const keep = (w: Wall) => {
      const epochDay = Math.round(Date.UTC(w.year, w.month - 1, w.day) / DAY_MS);
      if (step === DAY_MS) return true;
      if (step === 2 * DAY_MS) return epochDay % 2 === 0;
      // 1970-01-05 was a Monday
      if (step === 7 * DAY_MS) return (epochDay - 4) % 7 === 0;
      if (step === 30 * DAY_MS) return w.day === 1;
      if (step === 91 * DAY_MS) return w.day === 1 && w.month % 3 === 1;
      return w.day === 1 && w.month === 1;
    };
    return dayStarts(from, to, timeZone).filter((t) => keep(wall(t))).map((t) => ({ t, label: label.format(new Date(t)) }));
  }
  const wall = wallClock(timeZone);
  const label = new Intl.DateTimeFormat(undefined, { timeZone, hour: '2-digit', minute: '2-digit', hourCycle: 'h23' });
  const grain = Math.min(step, QUARTER);
  const ticks: { t: number; label: string }[] = [];
  for (let t = Math.ceil(from / grain) * grain; t <= to; t += grain) {
    if (wall(t).minuteOfDay % (step / MINUTE_MS) === 0) ticks.push({ t, label: label.format(new Date(t)) });
  }
  return ticks;
}
