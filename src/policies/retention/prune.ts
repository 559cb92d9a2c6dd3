/**
 * Which restore points a retention policy keeps: Proxmox Backup Server's prune semantics
 * (pbs-datastore/src/prune.rs, compute_prune_info), so an operator who knows PBS gets the answer
 * they expect. Points are walked newest first; keep-last runs first, then keep-hourly, -daily,
 * -weekly (ISO weeks), -monthly and -yearly, each keeping the newest point of every period no
 * earlier rule already keeps a point of, until its count of periods is used up. Periods are read
 * on the wall clock of the policy's time zone, as PBS reads them in local time: on the autumn
 * daylight-saving day the repeated hour is one hourly period, and a day has 23 or 25 hours.
 */
import { RetentionRules } from '../policy.events';

export type { RetentionRules };

export type RetentionRule = 'keep-last' | 'keep-hourly' | 'keep-daily' | 'keep-weekly' | 'keep-monthly' | 'keep-yearly';
/**
 * `keep-all`: no rule keeps anything, and PBS then prunes nothing (an empty policy never wipes a chain).
 * `whole-chain`: the rules prune it, but in an immutable repository a chain goes whole or not at all.
 */
export type KeepReason = RetentionRule | 'keep-all' | 'whole-chain';
/**
 * `<rule>`: a newer point of the same period was kept by that rule. `no-rule`: every rule had used up
 * its periods before reaching the point (PBS's default mark, "remove").
 */
export type PruneReason = RetentionRule | 'no-rule';

export interface PrunePoint {
  restorePointId: string;
  /** ISO timestamp: when the backup of this point was taken. */
  createdAt: string;
}

export type PruneMark =
  | { restorePointId: string; createdAt: string; keep: true; keptBy: KeepReason; period: string | null }
  | { restorePointId: string; createdAt: string; keep: false; prunedBy: PruneReason; period: string | null };

const RULES: { rule: RetentionRule; count: keyof RetentionRules; period: (t: WallClock, p: PrunePoint) => string }[] = [
  // One period per point: PBS keys keep-last by the backup's time, which is unique per snapshot.
  { rule: 'keep-last', count: 'keepLast', period: (_t, p) => p.restorePointId },
  { rule: 'keep-hourly', count: 'keepHourly', period: (t) => `${t.year}/${pad(t.month)}/${pad(t.day)}/${pad(t.hour)}` },
  { rule: 'keep-daily', count: 'keepDaily', period: (t) => `${t.year}/${pad(t.month)}/${pad(t.day)}` },
  { rule: 'keep-weekly', count: 'keepWeekly', period: (t) => isoWeek(t) },
  { rule: 'keep-monthly', count: 'keepMonthly', period: (t) => `${t.year}/${pad(t.month)}` },
  { rule: 'keep-yearly', count: 'keepYearly', period: (t) => `${t.year}` },
];

/** True when at least one rule keeps something (PBS's keeps_something). */
export function keepsSomething(rules: RetentionRules): boolean {
  return RULES.some(({ count }) => (rules[count] ?? 0) > 0);
}

/** Newest first, ties by id so the same points always give the same answer. */
export function newestFirst<P extends PrunePoint>(points: readonly P[]): P[] {
  return [...points].sort((a, b) => Date.parse(b.createdAt) - Date.parse(a.createdAt) || b.restorePointId.localeCompare(a.restorePointId));
}

/** The decision for every point, newest first. Pure: the same points, rules and zone give the same marks. */
export function computePrune(points: readonly PrunePoint[], rules: RetentionRules, timeZone: string): PruneMark[] {
  const list = newestFirst(points);
  if (!keepsSomething(rules)) return list.map((p) => ({ restorePointId: p.restorePointId, createdAt: p.createdAt, keep: true, keptBy: 'keep-all', period: null }));
  const clock = wallClock(timeZone);
  const marks = new Map<string, PruneMark>();
  for (const { rule, count, period } of RULES) {
    const keep = rules[count];
    if (keep === undefined) continue;
    const periodOf = (p: PrunePoint) => period(clock(p.createdAt), p);
    // Periods an earlier rule already keeps a point of are not this rule's to fill.
    const alreadyIncluded = new Set(list.filter((p) => marks.get(p.restorePointId)?.keep).map(periodOf));
    const included = new Set<string>();
    for (const p of list) {
      if (marks.has(p.restorePointId)) continue;
      const id = periodOf(p);
      if (alreadyIncluded.has(id)) continue;
      if (!included.has(id)) {
        if (included.size >= keep) break;
        included.add(id);
        marks.set(p.restorePointId, { restorePointId: p.restorePointId, createdAt: p.createdAt, keep: true, keptBy: rule, period: id });
      } else {
        marks.set(p.restorePointId, { restorePointId: p.restorePointId, createdAt: p.createdAt, keep: false, prunedBy: rule, period: id });
      }
    }
  }
  return list.map((p) => marks.get(p.restorePointId) ?? { restorePointId: p.restorePointId, createdAt: p.createdAt, keep: false, prunedBy: 'no-rule', period: null });
}

export interface WallClock {
  year: number;
  month: number;
  day: number;
  hour: number;
}

const formatters = new Map<string, Intl.DateTimeFormat>();

/** Reads instants on the wall clock of `timeZone` (an IANA name); throws RangeError for an unknown zone. */
export function wallClock(timeZone: string): (iso: string) => WallClock {
  let format = formatters.get(timeZone);
  if (!format) {
    format = new Intl.DateTimeFormat('en-US', { timeZone, year: 'numeric', month: 'numeric', day: 'numeric', hour: 'numeric', hourCycle: 'h23' });
    formatters.set(timeZone, format);
  }
  const f = format;
  return (iso) => {
    const parts = Object.fromEntries(f.formatToParts(new Date(iso)).map((p) => [p.type, p.value]));
    return { year: Number(parts.year), month: Number(parts.month), day: Number(parts.day), hour: Number(parts.hour) };
  };
}

/** ISO 8601 week-numbering year and week (strftime's %G/%V): weeks start on Monday; week 1 holds the year's first Thursday. */
export function isoWeek(t: Pick<WallClock, 'year' | 'month' | 'day'>): string {
  const date = new Date(Date.UTC(t.year, t.month - 1, t.day));
  const weekday = (date.getUTCDay() + 6) % 7; // Monday 0 … Sunday 6
  date.setUTCDate(date.getUTCDate() - weekday + 3); // the Thursday of this week decides its year
  const weekYear = date.getUTCFullYear();
  const firstThursday = new Date(Date.UTC(weekYear, 0, 4));
  firstThursday.setUTCDate(firstThursday.getUTCDate() - ((firstThursday.getUTCDay() + 6) % 7) + 3);
  const week = 1 + Math.round((date.getTime() - firstThursday.getTime()) / (7 * 86_400_000));
  return `${weekYear}/${pad(week)}`;
}

const pad = (n: number) => String(n).padStart(2, '0');

/**
 * In an immutable repository a chain is removed whole or not at all: removing its oldest points while later ones
 * stay would merge them into a full, rewriting files the repository promised not to touch. A point the rules prune
 * keeps (`whole-chain`) while any point of its chain (from a full to the point before the next full) is kept.
 */
export function wholeChainsOnly(points: readonly (PrunePoint & { type: 'full' | 'incremental' })[], marks: readonly PruneMark[]): PruneMark[] {
  const chainOf = new Map<string, number>();
  let chain = -1;
  for (const p of [...newestFirst(points)].reverse()) {
    if (p.type === 'full' || chain < 0) chain++;
    chainOf.set(p.restorePointId, chain);
  }
  const kept = new Set(marks.filter((m) => m.keep).map((m) => chainOf.get(m.restorePointId)));
  return marks.map((m) => (m.keep || !kept.has(chainOf.get(m.restorePointId)) ? m : { restorePointId: m.restorePointId, createdAt: m.createdAt, keep: true, keptBy: 'whole-chain', period: null }));
}

/**
 * The marks for a chain as retention decides them, newest first: a point being deleted is already gone, and in an
 * immutable repository chains go whole (wholeChainsOnly). Policies and sync jobs decide the same way.
 */
export function chainPruneMarks(
  state: { points: readonly (PrunePoint & { type: 'full' | 'incremental' })[]; pending: { restorePointId: string } | null; recycled: Record<string, unknown> },
  rules: RetentionRules,
  timeZone: string,
  immutable: boolean,
): PruneMark[] {
  // a point in the recycle bin is already deleted as far as retention goes: it neither counts as kept nor is pruned again
  const points = state.points.filter((p) => p.restorePointId !== state.pending?.restorePointId && !state.recycled[p.restorePointId]);
  const marks = computePrune(points, rules, timeZone);
  return immutable ? wholeChainsOnly(points, marks) : marks;
}

/**
 * The order the pruned points are deleted in: oldest first merges each into the next; an immutable repository's whole
 * chains go newest first, so that each delete removes only a chain's newest point and no file that stays is rewritten.
 */
export function deletionOrder(marks: readonly PruneMark[], immutable: boolean): PruneMark[] {
  return (immutable ? [...marks] : [...marks].reverse()).filter((m) => !m.keep);
}
