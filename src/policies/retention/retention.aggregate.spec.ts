import { fold } from '../../eventing/aggregate';
import { computePrune } from './prune';
import { RetentionCommand, retentionAggregate } from './retention.aggregate';
import { RETENTION_DECIDED, RETENTION_PRUNE_DEFERRED, RetentionEvent } from './retention.events';

const points = ['2024-05-01T00:00:00Z', '2024-05-01T08:00:00Z', '2024-05-01T16:00:00Z'].map((t, i) => ({ restorePointId: `rp${i}`, createdAt: t }));
const marks = computePrune(points, { keepLast: 1 }, 'UTC');
const decide = (trigger: Extract<RetentionCommand, { kind: 'decide' }>['trigger'], vmId = 'vm1'): RetentionCommand => ({
  kind: 'decide',
  policyId: 'p1',
  vmId,
  repositoryId: 'r1',
  trigger,
  rules: { keepLast: 1 },
  timeZone: 'UTC',
  decidedAt: '2024-05-01T16:05:00Z',
  marks,
});
const given = (...events: RetentionEvent[]) => fold(retentionAggregate, events);
const when = (command: RetentionCommand, ...history: RetentionEvent[]) => retentionAggregate.decide(command, given(...history));

describe('retention decider', () => {
  it('records the decision with the rule of every point, newest first', () => {
    const [event] = when(decide({ kind: 'backup', backupId: 'job1' }));
    expect(event.type).toBe(RETENTION_DECIDED);
    expect(event.data).toMatchObject({
      policyId: 'p1',
      marks: [
        { restorePointId: 'rp2', keptBy: 'keep-last' },
        { restorePointId: 'rp1', prunedBy: 'no-rule' },
        { restorePointId: 'rp0', prunedBy: 'no-rule' },
      ],
    });
  });

  it('decides once per backup: a second hub reacting to the same completion appends nothing', () => {
    const first = when(decide({ kind: 'backup', backupId: 'job1' }));
    expect(when(decide({ kind: 'backup', backupId: 'job1' }), ...first)).toEqual([]);
    expect(when(decide({ kind: 'backup', backupId: 'job2' }), ...first)).toHaveLength(1);
    expect(when(decide({ kind: 'manual' }), ...first)).toHaveLength(1);
  });

  it('never records a decision that prunes the newest point, nor one that names a point twice', () => {
    const bad = { ...decide({ kind: 'manual' }), marks: [marks[1], marks[0], marks[2]] } as RetentionCommand;
    expect(() => when(bad)).toThrow(/keep the newest/);
    const twice = { ...decide({ kind: 'manual' }), marks: [marks[0], marks[0]] } as RetentionCommand;
    expect(() => when(twice)).toThrow(/once/);
  });

  it('remembers a deferred prune until the next decision on its chain, and records the same deferral once', () => {
    const defer: RetentionCommand = { kind: 'defer', policyId: 'p1', vmId: 'vm1', repositoryId: 'r1', restorePointId: 'rp1', reason: 'mounted' };
    const deferred = when(defer);
    expect(deferred).toEqual([{ type: RETENTION_PRUNE_DEFERRED, data: { policyId: 'p1', vmId: 'vm1', repositoryId: 'r1', restorePointId: 'rp1', reason: 'mounted' } }]);
    expect(when(defer, ...deferred)).toEqual([]);
    expect(given(...deferred).deferred).toEqual({ rp1: { vmId: 'vm1', repositoryId: 'r1', reason: 'mounted' } });
    const otherChain = when(decide({ kind: 'retry' }, 'vm2'), ...deferred);
    expect(given(...deferred, ...otherChain).deferred).toHaveProperty('rp1');
    const sameChain = when(decide({ kind: 'retry' }), ...deferred);
    expect(given(...deferred, ...sameChain).deferred).toEqual({});
  });
});
