import { PolicyDefinition } from '../policy.events';
import { computePrune } from '../retention/prune';
import { modelOf, RecordedBackup, simulate } from './simulate';

const HOUR = 3_600_000;
const policy = (over: Partial<PolicyDefinition> = {}): PolicyDefinition => ({
  name: 'p',
  vms: { ids: ['vm1'] },
  repositoryId: 'r',
  schedule: { cron: '30 */8 * * *', timezone: 'UTC', catchUp: 'once' },
  fullEvery: null,
  retention: { keepLast: 2, keepDaily: 3 },
  rpoHours: 12,
  enabled: true,
  ...over,
});
const backup = (type: 'full' | 'incremental', start: string, seconds: number, bytes: number): RecordedBackup => ({
  vmId: 'vm1',
  type,
  startedAt: start,
  finishedAt: new Date(Date.parse(start) + seconds * 1000).toISOString(),
  bytes,
});
const history = [
  backup('full', '2026-04-01T00:30:00Z', 20, 2000),
  backup('incremental', '2026-04-01T08:30:00Z', 4, 80),
  backup('incremental', '2026-04-01T16:30:00Z', 6, 160),
  backup('incremental', '2026-04-02T00:30:00Z', 5, 80),
];
const vms = [{ vmId: 'vm1', name: 'vm one' }];

describe('policy backtesting by replay', () => {
  it('learns medians of duration and size, and a change rate per hour, from the history', () => {
    expect(modelOf(history)).toEqual({ fulls: 1, incrementals: 3, fullBytes: 2000, fullDurationMs: 20_000, incrementalDurationMs: 5000, syntheticFulls: 0, syntheticFullDurationMs: 20_000, changedBytesPerHour: 10 });
    expect(modelOf([])).toBeNull();
  });

  it("does not take a recorded synthetic full for a full: its bytes are the changes since the point it copied, a change-rate sample, and its time is its own", () => {
    const withSynthetic = [...history, { ...backup('full', '2026-04-02T08:30:00Z', 12, 80), synthesizedFrom: 'rp-3' }, { ...backup('full', '2026-04-02T16:30:00Z', 14, 80), synthesizedFrom: 'rp-4' }];
    expect(modelOf(withSynthetic)).toEqual({ fulls: 1, incrementals: 3, fullBytes: 2000, fullDurationMs: 20_000, incrementalDurationMs: 5000, syntheticFulls: 2, syntheticFullDurationMs: 13_000, changedBytesPerHour: 10 });
    // taken for fulls, the median full would be 80 bytes
    expect(modelOf(withSynthetic.map(({ synthesizedFrom: _, ...b }) => b))!.fullBytes).toBe(80);
    // and a predicted synthetic full takes the recorded ones' time
    const [vm] = simulate(policy({ retention: { keepLast: 50 } }), new Date('2026-05-01T00:00:00Z'), new Date('2026-05-05T00:00:00Z'), vms, withSynthetic, { immutableDays: null, maxChainDepth: 3 }).vms;
    expect(vm.pointsAtEnd[3]).toMatchObject({ synthesizedFrom: 'sim-3', bytes: 2000, createdAt: '2026-05-02T00:30:13.000Z' });
  });

  it('keeps at the end exactly what the retention rules keep of the slots it replays, and is deterministic', () => {
    const from = new Date('2026-05-01T00:00:00Z');
    const to = new Date('2026-05-05T00:00:00Z');
    const result = simulate(policy(), from, to, vms, history);
    const [vm] = result.vms;
    expect(result.slots).toBe(12);
    expect(vm.backups).toBe(12);
    // the same rules over the same twelve finish times
    const times = Array.from({ length: 12 }, (_, i) => new Date(Date.parse('2026-05-01T00:30:00Z') + i * 8 * HOUR + (i ? 5000 : 20_000)).toISOString());
    const kept = computePrune(times.map((t, i) => ({ restorePointId: `p${i}`, createdAt: t })), policy().retention, 'UTC').filter((m) => m.keep).map((m) => m.createdAt).sort();
    expect(vm.pointsAtEnd.map((p) => p.createdAt)).toEqual(kept);
    expect(vm.pointsAtEnd[0].type).toBe('full');
    expect(simulate(policy(), from, to, vms, history)).toEqual(result);
  });

  it('reports overlapping jobs, RPO violations and repository bytes per day', () => {
    const slow = [backup('full', '2026-04-01T00:00:00Z', 3 * 3600, 1000)];
    const result = simulate(policy({ schedule: { cron: '0 * * * *', timezone: 'UTC', catchUp: 'once' }, retention: { keepLast: 1 }, rpoHours: 2 }), new Date('2026-05-01T00:00:00Z'), new Date('2026-05-01T12:00:00Z'), vms, slow);
    const [vm] = result.vms;
    // a 3 h full every hour: two of every three slots find the previous job still running
    expect(vm.backups).toBe(4);
    expect(vm.overlappingJobs.slice(0, 2)).toEqual([
      { slot: '2026-05-01T01:00:00.000Z', runningSince: '2026-05-01T00:00:00.000Z' },
      { slot: '2026-05-01T02:00:00.000Z', runningSince: '2026-05-01T00:00:00.000Z' },
    ]);
    // no point before 03:00; afterwards one every 3 h, within the 2 h RPO only for the first 2 h of each
    expect(vm.rpoViolations[0]).toEqual({ from: '2026-05-01T00:00:00.000Z', to: '2026-05-01T03:00:00.000Z', hours: 3 });
    expect(vm.rpoViolations[1]).toEqual({ from: '2026-05-01T05:00:00.000Z', to: '2026-05-01T06:00:00.000Z', hours: 1 });
    expect(result.repositoryBytes).toEqual([{ date: '2026-05-01', bytes: 1000 }]);
  });

  it('says which VMs it cannot model instead of guessing', () => {
    const result = simulate(policy(), new Date('2026-05-01T00:00:00Z'), new Date('2026-05-02T00:00:00Z'), [...vms, { vmId: 'vm2', name: 'new' }], history);
    expect(result.vms[1]).toMatchObject({ vmId: 'vm2', unmodelled: 'no completed backup of this VM in the history', backups: 0 });
  });

  it('in an immutable repository removes whole chains only, once their lock expired, and shows what the lock costs', () => {
    const from = new Date('2026-05-01T00:00:00Z');
    const to = new Date('2026-05-11T00:00:00Z');
    // three backups a day, a new chain every 3 backups: one chain a day, the rules keep two points
    const locked = policy({ fullEvery: 3, retention: { keepLast: 2 } });
    const plain = simulate(locked, from, to, vms, history);
    const immutable = simulate(locked, from, to, vms, history, { immutableDays: 2 });
    expect(plain.immutable).toBeNull();
    expect(immutable.immutable).toEqual({ days: 2, repositoryBytesWithoutLock: plain.repositoryBytes });
    const end = immutable.vms[0].pointsAtEnd;
    // nothing was merged: every chain left starts with its full, and only whole chains went
    const chains = end.reduce<string[][]>((all, p) => (p.type === 'full' ? [...all, [p.type]] : (all.at(-1)!.push(p.type), all)), []);
    expect(chains.every((c) => c[0] === 'full')).toBe(true);
    expect(end.filter((p) => p.type === 'full').length).toBe(chains.length);
    // the newest chain (kept by the rules) and the chains whose newest point is younger than 2 days at the last backup
    const lastBackup = Date.parse(end.at(-1)!.createdAt);
    const chainEnds = end.filter((p, i) => i === end.length - 1 || end[i + 1].type === 'full').map((p) => Date.parse(p.createdAt));
    expect(chainEnds.slice(0, -1).every((t) => t + 2 * 24 * HOUR > lastBackup)).toBe(true);
    expect(chainEnds.length).toBeGreaterThan(1);
    // the lock costs space: more bytes than the same policy without it, never fewer
    const last = (r: { bytes: number }[]) => r.at(-1)!.bytes;
    expect(last(immutable.repositoryBytes)).toBeGreaterThan(last(plain.repositoryBytes));
    immutable.repositoryBytes.forEach((d, i) => expect(d.bytes).toBeGreaterThanOrEqual(plain.repositoryBytes[i].bytes - 0));
  });

  describe("synthetic fulls, as the repository's maxChainDepth makes them", () => {
    const from = new Date('2026-05-01T00:00:00Z');
    const to = new Date('2026-05-05T00:00:00Z');
    const kinds = (points: { type: string; synthesizedFrom: string | null }[]) => points.map((p) => (p.synthesizedFrom ? 'S' : p.type === 'full' ? 'F' : 'I')).join('');

    it('makes the backup after a chain of maxChainDepth points a synthetic full of its newest point, with a full\'s size and time', () => {
      const result = simulate(policy({ retention: { keepLast: 50 } }), from, to, vms, history, { immutableDays: null, maxChainDepth: 3 });
      const [vm] = result.vms;
      expect(result.maxChainDepth).toBe(3);
      expect(kinds(vm.pointsAtEnd)).toBe('FIISIISIISII');
      expect(vm.syntheticFulls).toBe(3);
      expect(vm.pointsAtEnd.filter((p) => p.synthesizedFrom).map((p) => [p.restorePointId, p.synthesizedFrom, p.type, p.bytes])).toEqual([
        ['sim-4', 'sim-3', 'full', 2000],
        ['sim-7', 'sim-6', 'full', 2000],
        ['sim-10', 'sim-9', 'full', 2000],
      ]);
      // it took a full's 20 s, not an incremental's 5 s
      expect(vm.pointsAtEnd[3].createdAt).toBe('2026-05-02T00:30:20.000Z');
    });

    it('without a limit from the repository takes the default (32): twelve backups stay one chain', () => {
      const [vm] = simulate(policy({ retention: { keepLast: 50 } }), from, to, vms, history).vms;
      expect(kinds(vm.pointsAtEnd)).toBe('FIIIIIIIIIII');
      expect(vm.syntheticFulls).toBe(0);
      expect(simulate(policy(), from, to, vms, history).maxChainDepth).toBe(32);
    });

    it("a full the policy asks for (fullEvery) is a real full and starts the count again", () => {
      const [vm] = simulate(policy({ fullEvery: 4, retention: { keepLast: 50 } }), from, to, vms, history, { immutableDays: null, maxChainDepth: 3 }).vms;
      expect(kinds(vm.pointsAtEnd)).toBe('FIISFIISFIIS');
      expect(vm.syntheticFulls).toBe(3);
    });

    it('counts the chain as retention leaves it: merges that keep it short make no synthetic full', () => {
      const [vm] = simulate(policy({ retention: { keepLast: 2 } }), from, to, vms, history, { immutableDays: null, maxChainDepth: 3 }).vms;
      expect(vm.backups).toBe(12);
      expect(vm.syntheticFulls).toBe(0);
      expect(kinds(vm.pointsAtEnd)).toBe('FI');
    });

    it('in an immutable repository, where nothing is merged, chains end at the limit too', () => {
      const [vm] = simulate(policy({ retention: { keepLast: 50 } }), from, to, vms, history, { immutableDays: 30, maxChainDepth: 4 }).vms;
      expect(kinds(vm.pointsAtEnd)).toBe('FIIISIIISIII');
    });
  });
});
