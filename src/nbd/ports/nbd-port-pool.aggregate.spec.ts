import { fold } from '../../eventing/aggregate';
import { DomainError } from '../../eventing/domain-error';
import { nbdPortPoolAggregate as pool, PortPoolCommand, PortPoolState } from './nbd-port-pool.aggregate';
import { NbdPortEvent } from './nbd-port.events';

const range = { first: 100, last: 102 };
const allocate = (jobId: string, diskId: string, leaseId = `${jobId}-${diskId}`): PortPoolCommand => ({ kind: 'allocate', jobId, diskId, leaseId, range });
const release = (port: number, reason: string, leaseId?: string, exporting: string[] = []): PortPoolCommand => ({ kind: 'release', port, leaseId, reason, range, exporting });

function run(commands: PortPoolCommand[]): { state: PortPoolState; events: NbdPortEvent[] } {
  let state = pool.initialState();
  const events: NbdPortEvent[] = [];
  for (const c of commands) {
    const produced = pool.decide(c, state);
    events.push(...produced);
    state = produced.reduce(pool.evolve, state);
  }
  return { state, events };
}

describe('NBD port pool rules', () => {
  it('leases distinct ports until the pool is exhausted, then refuses with the range in the message', () => {
    const { state, events } = run([allocate('j1', 'd0'), allocate('j1', 'd1'), allocate('j2', 'd0')]);
    expect(events.map((e) => e.data.port)).toEqual([100, 101, 102]);
    expect(() => pool.decide(allocate('j3', 'd0'), state)).toThrow('NBD port pool exhausted: all 3 ports 100-102 are leased');
  });

  it('refuses a second lease for the same job disk', () => {
    const { state } = run([allocate('j1', 'd0')]);
    expect(() => pool.decide(allocate('j1', 'd0', 'other'), state)).toThrow(/already holds port 100/);
  });

  it('hands out ports round-robin, so a just-released port is reused last', () => {
    const { events } = run([allocate('j1', 'd0'), release(100, 'done'), allocate('j2', 'd0'), allocate('j3', 'd0'), allocate('j4', 'd0')]);
    expect(events.filter((e) => e.type === 'NbdPortAllocated').map((e) => e.data.port)).toEqual([100, 101, 102, 100]);
  });

  it('releases by port with a reason, refuses unknown ports and a stale lease id (fencing)', () => {
    const { state } = run([allocate('j1', 'd0', 'lease-a')]);
    expect(pool.decide(release(100, 'done', 'lease-a'), state)).toEqual([
      { type: 'NbdPortReleased', data: { port: 100, jobId: 'j1', leaseId: 'lease-a', reason: 'done' } },
    ]);
    expect(() => pool.decide(release(101, 'x'), state)).toThrow(DomainError);
    expect(() => pool.decide(release(100, 'x', 'lease-b'), state)).toThrow(/held by lease lease-a/);
  });

  it('refuses a port outside the pool before looking at leases', () => {
    expect(() => pool.decide(release(99, 'x'), pool.initialState())).toThrow('port 99 is outside the NBD port pool 100-102');
    expect(() => pool.decide(release(100.5, 'x'), pool.initialState())).toThrow(/outside the NBD port pool/);
  });

  it('releases a port leased before the range changed, which the new range no longer holds', () => {
    const { state } = run([allocate('j1', 'd0', 'lease-a')]);
    const narrowed = { first: 101, last: 102 };
    expect(pool.decide({ kind: 'release', port: 100, leaseId: 'lease-a', reason: 'reconciled', range: narrowed, exporting: [] }, state)).toEqual([
      { type: 'NbdPortReleased', data: { port: 100, jobId: 'j1', leaseId: 'lease-a', reason: 'reconciled' } },
    ]);
    expect(() => pool.decide({ kind: 'release', port: 99, reason: 'x', range: narrowed, exporting: [] }, state)).toThrow('port 99 is outside the NBD port pool 101-102');
  });

  it('refuses to release a port while its export runs, whichever hub process runs it', () => {
    const { state } = run([allocate('j1', 'd0', 'lease-a'), allocate('j2', 'd0', 'lease-b')]);
    expect(() => pool.decide(release(100, 'x', undefined, ['lease-a']), state)).toThrow(
      new DomainError('conflict', "port 100 serves a running export (lease lease-a); stop it first: DELETE /api/v1/nbd/ports/job/j1 stops the job's exports and releases its ports"),
    );
    expect(pool.decide(release(100, 'x', undefined, ['lease-b']), state)).toHaveLength(1);
  });

  it('releases every port of a job and nothing else', () => {
    const { state } = run([allocate('j1', 'd0'), allocate('j2', 'd0'), allocate('j1', 'd1')]);
    const events = pool.decide({ kind: 'releaseJob', jobId: 'j1', reason: 'job ended' }, state);
    expect(events.map((e) => e.data.port)).toEqual([100, 102]);
    expect(Object.keys(fold(pool, [...run([allocate('j1', 'd0'), allocate('j2', 'd0'), allocate('j1', 'd1')]).events, ...events]).leases)).toEqual(['101']);
  });

  it('never mutates the state it folds', () => {
    const before = pool.initialState();
    const frozen = Object.freeze({ ...before, leases: Object.freeze({}) });
    expect(() => pool.evolve(frozen, { type: 'NbdPortAllocated', data: { port: 100, jobId: 'j', diskId: 'd', leaseId: 'l' } })).not.toThrow();
  });
});
