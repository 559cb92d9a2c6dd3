import { fold } from '../../eventing/aggregate';
import { DomainError } from '../../eventing/domain-error';
import { syncJobAggregate, SyncJobCommand } from './sync-job.aggregate';
import { SyncJobDefinition, SyncJobEvent } from './sync-job.events';

const definition: SyncJobDefinition = {
  syncJobId: 'j1',
  remoteId: 'r1',
  repositoryId: 'repo',
  remoteRepositoryId: null,
  vms: null,
  schedule: null,
  timeZone: null,
  maxBytesPerSecond: null,
  retention: null,
};

function play(...commands: SyncJobCommand[]): SyncJobEvent[] {
  const events: SyncJobEvent[] = [];
  for (const command of commands) events.push(...syncJobAggregate.decide(command, fold(syncJobAggregate, events)));
  return events;
}

const refusal = (fn: () => unknown) => {
  try {
    fn();
  } catch (error) {
    return error instanceof DomainError ? `${error.kind}: ${error.message}` : String(error);
  }
  return 'accepted';
};

describe('sync job aggregate', () => {
  it('one run at a time: a second start is refused until the first ends', () => {
    const events = play({ kind: 'create', definition }, { kind: 'startRun', runId: 'a', trigger: 'manual', hubInstance: 'h1' });
    expect(refusal(() => play({ kind: 'create', definition }, { kind: 'startRun', runId: 'a', trigger: 'manual', hubInstance: 'h1' }, { kind: 'startRun', runId: 'b', trigger: 'schedule', hubInstance: 'h1' }))).toBe('conflict: sync job j1 is already running (run a)');
    const state = fold(syncJobAggregate, [...events, ...syncJobAggregate.decide({ kind: 'completeRun', result: { runId: 'a', synced: [], alreadyHeld: 0, bytesReceived: 0, durationMs: 1 } }, fold(syncJobAggregate, events))]);
    expect(state.running).toBeNull();
    expect(syncJobAggregate.decide({ kind: 'startRun', runId: 'b', trigger: 'schedule', hubInstance: 'h1' }, state).map((e) => e.type)).toEqual(['SyncRunStarted']);
  });

  it('a point begun and not recorded stays unfinished across a failed run, for the next run to clear; a completed run clears it', () => {
    const point = { runId: 'a', restorePointId: 'p1', vmId: 'vm1', files: ['vm1/d/p1.qcow2'], exportId: 'e1' };
    const failed = play({ kind: 'create', definition }, { kind: 'startRun', runId: 'a', trigger: 'manual', hubInstance: 'h1' }, { kind: 'startPoint', point }, { kind: 'failRun', result: { runId: 'a', reason: 'the hub stopped during the run', restorePointId: 'p1', synced: [], bytesReceived: 0 } });
    expect(fold(syncJobAggregate, failed)).toMatchObject({ running: null, unfinished: { syncJobId: 'j1', ...point } });
    // a failure recorded twice (a restart after the run already failed) appends nothing
    expect(syncJobAggregate.decide({ kind: 'failRun', result: { runId: 'a', reason: 'x', restorePointId: null, synced: [], bytesReceived: 0 } }, fold(syncJobAggregate, failed))).toEqual([]);
    const next = play({ kind: 'create', definition }, { kind: 'startRun', runId: 'b', trigger: 'manual', hubInstance: 'h1' }, { kind: 'completeRun', result: { runId: 'b', synced: ['p1'], alreadyHeld: 0, bytesReceived: 9, durationMs: 1 } });
    expect(fold(syncJobAggregate, next).unfinished).toBeNull();
  });

  it('progress is recorded while its run runs; a report that arrives after the run ended appends nothing', () => {
    const progress = { runId: 'a', restorePointId: 'p1', diskId: 'd', bytesDone: 1, bytesPlanned: 2, rate: 3 };
    const running = play({ kind: 'create', definition }, { kind: 'startRun', runId: 'a', trigger: 'manual', hubInstance: 'h1' });
    expect(syncJobAggregate.decide({ kind: 'progress', progress }, fold(syncJobAggregate, running))).toEqual([{ type: 'SyncPointProgressed', data: { syncJobId: 'j1', ...progress } }]);
    const ended = [...running, ...syncJobAggregate.decide({ kind: 'completeRun', result: { runId: 'a', synced: [], alreadyHeld: 0, bytesReceived: 0, durationMs: 1 } }, fold(syncJobAggregate, running))];
    expect(syncJobAggregate.decide({ kind: 'progress', progress }, fold(syncJobAggregate, ended))).toEqual([]);
  });

  it('a point or an end of a run that is not running is refused', () => {
    const created = play({ kind: 'create', definition });
    expect(refusal(() => syncJobAggregate.decide({ kind: 'startPoint', point: { runId: 'x', restorePointId: 'p', vmId: 'v', files: [], exportId: null } }, fold(syncJobAggregate, created)))).toBe('conflict: run x is not the sync job\'s running run');
    expect(refusal(() => syncJobAggregate.decide({ kind: 'startRun', runId: 'a', trigger: 'manual', hubInstance: 'h1' }, fold(syncJobAggregate, [])))).toBe('not_found: no such sync job');
  });

  it.each([
    [{ schedule: '61 * * * *' }, /^invalid: cron "61 \* \* \* \*"/],
    [{ schedule: '0 3 * * *', timeZone: 'Mars/Olympus' }, /^invalid: time zone "Mars\/Olympus" is not an IANA time zone/],
    [{ timeZone: 'UTC' }, /^invalid: timeZone is given with a schedule or retention only$/],
    [{ retention: {} }, /^invalid: retention needs at least one rule/],
    [{ retention: { keepLast: 0, keepDaily: 0 } }, /^invalid: retention keeps nothing/],
    [{ schedule: '30 2 * * *', timeZone: 'Europe/Berlin', retention: { keepDaily: 7, keepMonthly: 12 } }, /^accepted$/],
  ])('a definition %j: %s', (change, expected) => {
    expect(refusal(() => play({ kind: 'create', definition: { ...definition, ...change } }))).toMatch(expected);
  });

  it("a refused point is recorded on the run's stream while it runs, and the run's end names it again", () => {
    const refusal = { runId: 'a', restorePointId: '"../x"', vmId: 'vm1', reason: 'restorePointId "../x" is not a valid identifier' };
    const running = play({ kind: 'create', definition }, { kind: 'startRun', runId: 'a', trigger: 'manual', hubInstance: 'h1' });
    const refused = syncJobAggregate.decide({ kind: 'refusePoint', refusal }, fold(syncJobAggregate, running));
    expect(refused).toEqual([{ type: 'SyncPointRefused', data: { syncJobId: 'j1', ...refusal } }]);
    const { runId: _r, ...named } = refusal;
    const ended = syncJobAggregate.decide({ kind: 'completeRun', result: { runId: 'a', synced: [], alreadyHeld: 0, bytesReceived: 0, durationMs: 1, refused: [named] } }, fold(syncJobAggregate, [...running, ...refused]));
    expect(ended).toEqual([{ type: 'SyncRunCompleted', data: { syncJobId: 'j1', runId: 'a', synced: [], alreadyHeld: 0, bytesReceived: 0, durationMs: 1, refused: [named] } }]);
    expect(() => syncJobAggregate.decide({ kind: 'refusePoint', refusal }, fold(syncJobAggregate, [...running, ...refused, ...ended]))).toThrow("run a is not the sync job's running run");
  });
});
