import { parseCron, slotsBetween } from '../calendar';
import { PolicyDefinition } from '../policy.events';
import { computePrune, wallClock, wholeChainsOnly } from '../retention/prune';
import { DEFAULT_MAX_CHAIN_DEPTH } from '../../repositories/registry/repository.events';

/** One backup the event history recorded: what simulate learns durations, sizes and change rates from. */
export interface RecordedBackup {
  vmId: string;
  type: 'full' | 'incremental';
  /**
   * A synthetic full: the point it copied. Its agent sent only the changes since that point and its time includes the
   * hub's copy, so it tells neither a full's size nor an incremental's time; its bytes are a change-rate sample.
   */
  synthesizedFrom?: string | null;
  startedAt: string;
  finishedAt: string;
  bytes: number;
}

export interface SimulatedVm {
  vmId: string;
  name: string;
}

/** What the history says a backup of the VM costs; medians, so one odd run does not move the answer. */
export interface VmModel {
  fulls: number;
  incrementals: number;
  fullBytes: number;
  fullDurationMs: number;
  incrementalDurationMs: number;
  /** Synthetic fulls of the history: not among `fulls`, their size being the changes only. */
  syntheticFulls: number;
  /** A synthetic full's time (the hub's copy and the changes): the history's median, a full's without one. */
  syntheticFullDurationMs: number;
  /** Bytes an incremental carries per hour since the previous backup. */
  changedBytesPerHour: number;
}

export interface SimulatedPoint {
  restorePointId: string;
  type: 'full' | 'incremental';
  createdAt: string;
  bytes: number;
  /** A synthetic full: the point whose view it copies, as BackupTypeDecided.synthesizedFrom says; null otherwise. */
  synthesizedFrom: string | null;
}

/** What simulate needs to know of the repository the policy writes into. */
export interface SimulatedRepository {
  immutableDays: number | null;
  /** Absent: DEFAULT_MAX_CHAIN_DEPTH, as for a repository registered without one. */
  maxChainDepth?: number;
}

export interface SimulationResult {
  from: string;
  to: string;
  slots: number;
  /** The repository's limit the replay decided synthetic fulls by. */
  maxChainDepth: number;
  vms: {
    vmId: string;
    name: string;
    model: VmModel | null;
    /** Why the VM could not be simulated (no completed backup in the history). */
    unmodelled: string | null;
    backups: number;
    /** How many of `backups` were synthetic fulls: their chain held the repository's maxChainDepth points. */
    syntheticFulls: number;
    pointsAtEnd: SimulatedPoint[];
    days: { date: string; points: string[]; bytes: number }[];
    rpoViolations: { from: string; to: string; hours: number }[];
    overlappingJobs: { slot: string; runningSince: string }[];
  }[];
  /** Bytes of every VM's kept points at the end of each day (policy time zone). */
  repositoryBytes: { date: string; bytes: number }[];
  /** For an immutable repository: its lock, and `repositoryBytes` as a repository without it would hold them (the lock's cost is the difference). */
  immutable: { days: number; repositoryBytesWithoutLock: { date: string; bytes: number }[] } | null;
}

/** Slots of one simulation at most: a cron every second over a year would otherwise never end. */
export const MAX_SIMULATED_SLOTS = 20_000;

const HOUR_MS = 3_600_000;

/**
 * Replays the proposed policy over [from, to] on the recorded history: every slot of its schedule
 * starts a backup unless the VM's previous one still runs (an overlapping job, skipped like the
 * scheduler skips it), each backup takes as long and carries as many bytes as the history's
 * medians say, and the retention rules prune after every backup as the retention workflow does.
 * Pure and deterministic: the same history and policy give the same answer. Sizes are upper
 * bounds: a merge of a pruned full into its child is counted as the sum of both.
 */
export function simulate(policy: PolicyDefinition, from: Date, to: Date, vms: SimulatedVm[], history: RecordedBackup[], repository: SimulatedRepository = { immutableDays: null }): SimulationResult {
  const maxChainDepth = repository.maxChainDepth ?? DEFAULT_MAX_CHAIN_DEPTH;
  const spec = parseCron(policy.schedule.cron);
  const slots = slotsBetween(spec, policy.schedule.timezone, new Date(from.getTime() - 1), to, MAX_SIMULATED_SLOTS + 1);
  if (slots.length > MAX_SIMULATED_SLOTS) throw new RangeError(`the schedule has more than ${MAX_SIMULATED_SLOTS} slots between ${from.toISOString()} and ${to.toISOString()}: simulate a shorter period`);
  const dayOf = dayIn(policy.schedule.timezone);
  const days = daysBetween(from, to, dayOf);
  const results = [...vms].sort((a, b) => a.vmId.localeCompare(b.vmId)).map((vm) => {
    const model = modelOf(history.filter((b) => b.vmId === vm.vmId));
    if (!model) return { vmId: vm.vmId, name: vm.name, model: null, unmodelled: 'no completed backup of this VM in the history', backups: 0, syntheticFulls: 0, pointsAtEnd: [], days: [], rpoViolations: [], overlappingJobs: [] };
    return { vmId: vm.vmId, name: vm.name, model, unmodelled: null, ...replay(policy, model, slots, from, to, days, dayOf, repository.immutableDays, maxChainDepth) };
  });
  const repositoryBytes = days.map((date, i) => ({ date, bytes: results.reduce((sum, vm) => sum + (vm.days[i]?.bytes ?? 0), 0) }));
  const immutable = repository.immutableDays ? { days: repository.immutableDays, repositoryBytesWithoutLock: simulate(policy, from, to, vms, history, { immutableDays: null, maxChainDepth }).repositoryBytes } : null;
  return { from: from.toISOString(), to: to.toISOString(), slots: slots.length, maxChainDepth, vms: results, repositoryBytes, immutable };
}

export function modelOf(backups: RecordedBackup[]): VmModel | null {
  if (!backups.length) return null;
  const sorted = [...backups].sort((a, b) => a.startedAt.localeCompare(b.startedAt));
  const duration = (b: RecordedBackup) => Math.max(0, Date.parse(b.finishedAt) - Date.parse(b.startedAt));
  const fulls = sorted.filter((b) => b.type === 'full' && !b.synthesizedFrom);
  const incrementals = sorted.filter((b) => b.type === 'incremental');
  const synthetic = sorted.filter((b) => b.synthesizedFrom);
  const rates = sorted.flatMap((b, i) => {
    if ((b.type !== 'incremental' && !b.synthesizedFrom) || i === 0) return [];
    const hours = (Date.parse(b.startedAt) - Date.parse(sorted[i - 1].startedAt)) / HOUR_MS;
    return hours > 0 ? [b.bytes / hours] : [];
  });
  const fullBytes = fulls.length ? median(fulls.map((b) => b.bytes)) : Math.max(...sorted.map((b) => b.bytes));
  return {
    fulls: fulls.length,
    incrementals: incrementals.length,
    fullBytes,
    fullDurationMs: median((fulls.length ? fulls : sorted).map(duration)),
    incrementalDurationMs: median((incrementals.length ? incrementals : sorted).map(duration)),
    syntheticFulls: synthetic.length,
    syntheticFullDurationMs: median((synthetic.length ? synthetic : fulls.length ? fulls : sorted).map(duration)),
    changedBytesPerHour: rates.length ? median(rates) : 0,
  };
}

function replay(policy: PolicyDefinition, model: VmModel, slots: Date[], from: Date, to: Date, days: string[], dayOf: (t: number) => string, immutableDays: number | null, maxChainDepth: number) {
  let points: SimulatedPoint[] = [];
  let busyUntil = -Infinity;
  let runningSince = '';
  let backups = 0;
  let syntheticFulls = 0;
  const overlappingJobs: { slot: string; runningSince: string }[] = [];
  const perDay = new Map<string, { points: string[]; bytes: number }>();
  const violations: { from: string; to: string; hours: number }[] = [];
  const rpoMs = policy.rpoHours * HOUR_MS;
  let newestAt = -Infinity;
  const checkRpo = (until: number) => {
    // The VM is at risk from newest + RPO (or from the start, with no point yet) until the next point.
    const since = Math.max(from.getTime(), newestAt === -Infinity ? from.getTime() : newestAt + rpoMs);
    if (until > since && (newestAt === -Infinity || until - newestAt > rpoMs)) violations.push({ from: new Date(since).toISOString(), to: new Date(until).toISOString(), hours: round2((until - since) / HOUR_MS) });
  };
  const remember = (t: number) => perDay.set(dayOf(t), { points: points.map((p) => p.createdAt), bytes: sum(points.map((p) => p.bytes)) });

  for (const slot of slots) {
    const start = slot.getTime();
    if (start < busyUntil) {
      overlappingJobs.push({ slot: slot.toISOString(), runningSince });
      continue;
    }
    const requestedFull = !points.length || (policy.fullEvery !== null && backups % policy.fullEvery === 0);
    const previous = points.at(-1);
    // As the backup decides it (src/backups/backup-job.aggregate.ts, decideType): a backup the policy asks as auto,
    // whose chain already holds maxChainDepth points, is a synthetic full of the chain's newest point. It stands alone
    // like a full, so it is a full's size; it takes the recorded synthetic fulls' time, or without any a full's (the
    // chain bench: 787 ms against 905 ms for the first full and 416 ms for an incremental).
    const synthesizedFrom = !requestedFull && chainDepth(points) >= maxChainDepth ? previous!.restorePointId : null;
    const full = requestedFull || synthesizedFrom !== null;
    const duration = synthesizedFrom ? model.syntheticFullDurationMs : full ? model.fullDurationMs : model.incrementalDurationMs;
    const end = start + duration;
    if (end > to.getTime()) break;
    const bytes = full ? model.fullBytes : Math.min(model.fullBytes, Math.round(model.changedBytesPerHour * ((start - Date.parse(previous!.createdAt)) / HOUR_MS)));
    runningSince = slot.toISOString();
    busyUntil = end;
    backups++;
    if (synthesizedFrom) syntheticFulls++;
    checkRpo(end);
    newestAt = end;
    points.push({ restorePointId: `sim-${backups}`, type: full ? 'full' : 'incremental', createdAt: new Date(end).toISOString(), bytes, synthesizedFrom });
    points = immutableDays ? pruneWholeChains(points, policy, immutableDays, end) : prune(points, policy);
    remember(end);
  }
  checkRpo(to.getTime());
  let carried = { points: [] as string[], bytes: 0 };
  const dayRows = days.map((date) => {
    carried = perDay.get(date) ?? carried;
    return { date, ...carried };
  });
  return { backups, syntheticFulls, pointsAtEnd: points, days: dayRows, rpoViolations: violations, overlappingJobs };
}

/** Points in the chain the newest point ends: back to and with its full (after retention merged or removed what it pruned). */
function chainDepth(points: SimulatedPoint[]): number {
  let depth = 0;
  for (let i = points.length - 1; i >= 0; i--) {
    depth++;
    if (points[i].type === 'full') break;
  }
  return depth;
}

/** The retention rules after a backup; a pruned point's bytes move into the point that reads through it (a merge). */
function prune(points: SimulatedPoint[], policy: PolicyDefinition): SimulatedPoint[] {
  const keep = new Set(computePrune(points, policy.retention, policy.schedule.timezone).filter((m) => m.keep).map((m) => m.restorePointId));
  const out: SimulatedPoint[] = [];
  let carried = 0;
  let carriedFull = false;
  for (const p of points) {
    // a full starts a chain: what was pruned of the chain before it was removed from that chain's end, not merged into this one
    if (p.type === 'full') {
      carried = 0;
      carriedFull = false;
    }
    if (!keep.has(p.restorePointId)) {
      carried += p.bytes;
      carriedFull ||= p.type === 'full';
      continue;
    }
    // Merging a pruned full into its child makes the child the full; a removed incremental is rebased into its child.
    out.push({ ...p, type: carriedFull ? 'full' : p.type, bytes: p.bytes + carried });
    carried = 0;
    carriedFull = false;
  }
  return out;
}

/**
 * In an immutable repository a chain goes whole once the rules prune all of it and its newest point's lock expired
 * (wholeChainsOnly): nothing is merged, so no point's bytes move, and a pruned chain still locked costs its space.
 */
function pruneWholeChains(points: SimulatedPoint[], policy: PolicyDefinition, immutableDays: number, now: number): SimulatedPoint[] {
  const keep = new Set(wholeChainsOnly(points, computePrune(points, policy.retention, policy.schedule.timezone)).filter((m) => m.keep).map((m) => m.restorePointId));
  const chains: SimulatedPoint[][] = [];
  for (const p of points) {
    if (p.type === 'full' || !chains.length) chains.push([]);
    chains.at(-1)!.push(p);
  }
  const expired = (chain: SimulatedPoint[]) => Date.parse(chain.at(-1)!.createdAt) + immutableDays * 24 * HOUR_MS <= now;
  return chains.filter((chain) => chain.some((p) => keep.has(p.restorePointId)) || !expired(chain)).flat();
}

function dayIn(timeZone: string): (t: number) => string {
  const clock = wallClock(timeZone);
  return (t) => {
    const w = clock(new Date(t).toISOString());
    return `${w.year}-${String(w.month).padStart(2, '0')}-${String(w.day).padStart(2, '0')}`;
  };
}

function daysBetween(from: Date, to: Date, dayOf: (t: number) => string): string[] {
  const days: string[] = [];
  for (let t = from.getTime(); t <= to.getTime() + HOUR_MS * 24; t += HOUR_MS) {
    const d = dayOf(Math.min(t, to.getTime()));
    if (days.at(-1) !== d) days.push(d);
    if (t >= to.getTime()) break;
  }
  return days;
}

function median(values: number[]): number {
  const s = [...values].sort((a, b) => a - b);
  const mid = Math.floor(s.length / 2);
  return s.length % 2 ? s[mid] : Math.round((s[mid - 1] + s[mid]) / 2);
}

const sum = (values: number[]) => values.reduce((a, b) => a + b, 0);
const round2 = (n: number) => Math.round(n * 100) / 100;
