import { fold } from '../eventing/aggregate';
import { backupJobAggregate as job, BackupJobCommand, decisionOf, LastPoint } from './backup-job.aggregate';
import { BackupEvent, Target } from './backup.events';

const target = (diskId: string): Target => ({ diskId, file: `vm/${diskId}/rp.qcow2`, parentFile: null, virtualSize: 1, leaseId: `l-${diskId}`, port: 10100, exportName: diskId });
const happyPath: BackupJobCommand[] = [
  { kind: 'request', jobId: 'j', vmId: 'vm', agentId: 'a', repositoryId: 'r', requestedType: 'auto' },
  { kind: 'start', hubInstance: 'hub-a' },
  { kind: 'decideType', restorePointId: 'rp', last: null, plan: { mode: 'full', reason: 'no earlier restore point in this chain', disks: [{ diskId: 'd0', virtualSize: 1 }, { diskId: 'd1', virtualSize: 1 }] }, maxChainDepth: 32 },
  { kind: 'targetsPrepared', targets: [target('d0'), target('d1')] },
  { kind: 'snapshotRequested' },
  { kind: 'snapshotCreated', snapshotId: 's', diskIds: ['d1', 'd0'] },
  { kind: 'transferStarted', diskId: 'd0', bytesPlanned: 100 },
  { kind: 'transferProgressed', diskId: 'd0', bytesDone: 50, bytesPlanned: 100, rate: 10 },
  { kind: 'transferCompleted', diskId: 'd0', bytesWritten: 100, bytesZeroed: 0, bytesPlanned: 100, durationMs: 5, changeRef: 'sendense-rp' },
  { kind: 'transferStarted', diskId: 'd1', bytesPlanned: 10 },
  { kind: 'transferCompleted', diskId: 'd1', bytesWritten: 10, bytesZeroed: 0, bytesPlanned: 10, durationMs: 5, changeRef: 'sendense-rp' },
  { kind: 'snapshotRemoved' },
  { kind: 'targetsReleased', filesRemoved: [] },
  { kind: 'complete' },
];

function run(commands: BackupJobCommand[], events: BackupEvent[] = []): BackupEvent[] {
  for (const c of commands) events.push(...job.decide(c, fold(job, events)));
  return events;
}

describe('backup job rules', () => {
  it('walks the whole workflow with one snapshot for all disks and sums the bytes', () => {
    const events = run(happyPath);
    expect(events.filter((e) => e.type === 'SnapshotCreated')).toHaveLength(1);
    expect(events.at(-1)).toEqual({ type: 'BackupCompleted', data: { jobId: 'j', restorePointId: 'rp', bytesWritten: 110 } });
    expect(fold(job, events).phase).toBe('completed');
  });

  it('refuses a snapshot that does not cover every disk', () => {
    expect(() => run([...happyPath.slice(0, 5), { kind: 'snapshotCreated', snapshotId: 's', diskIds: ['d0'] }])).toThrow(/must cover every disk \(d0, d1\)/);
  });

  it('cannot complete before every disk is transferred and the exports are stopped', () => {
    expect(() => run([...happyPath.slice(0, 9), { kind: 'complete' }])).toThrow(/disks not transferred: d1/);
    expect(() => run([...happyPath.slice(0, 11), { kind: 'complete' }])).toThrow(/before its exports are stopped/);
  });

  it('records a failure with its phase, then ignores late progress but still records cleanup', () => {
    const events = run([...happyPath.slice(0, 8), { kind: 'fail', reason: 'agent disconnected' }]);
    expect(events.at(-1)).toEqual({ type: 'BackupFailed', data: { jobId: 'j', phase: 'transferring', reason: 'agent disconnected' } });
    expect(run([{ kind: 'transferProgressed', diskId: 'd0', bytesDone: 90, bytesPlanned: 100, rate: 1 }, { kind: 'fail', reason: 'again' }], [...events]).slice(events.length)).toEqual([]);
    expect(run([{ kind: 'snapshotRemoved' }], [...events]).at(-1)!.type).toBe('SnapshotRemoved');
    expect(() => run([{ kind: 'cancel', jobId: 'j', }], [...events])).toThrow(/already failed/);
  });

  it('refuses progress for a disk that is not part of the job', () => {
    expect(() => run([...happyPath.slice(0, 6), { kind: 'transferStarted', diskId: 'd9', bytesPlanned: 1 }])).toThrow(/disk d9 is not part/);
  });

  describe('full or incremental', () => {
    const disks = [{ diskId: 'd0', virtualSize: 100 }, { diskId: 'd1', virtualSize: 50 }];
    const last: LastPoint = { restorePointId: 'rp-1', disks, corrupt: null, depth: 5 };
    const incrementalPlan = { mode: 'incremental' as const, reason: null, disks };
    const given = (requestedType: 'full' | 'incremental' | 'auto') =>
      run([{ kind: 'request', jobId: 'j', vmId: 'vm', agentId: 'a', repositoryId: 'r', requestedType }, { kind: 'start', hubInstance: 'hub-a' }]);
    const decided = (events: BackupEvent[], command: Omit<Extract<BackupJobCommand, { kind: 'decideType' }>, 'maxChainDepth'> & { maxChainDepth?: number }) =>
      run([{ maxChainDepth: 32, ...command }], events).at(-1)!.data;

    it('given a chain whose bitmaps agree, when auto is requested, then it is an incremental on the newest point', () => {
      expect(decided(given('auto'), { kind: 'decideType', restorePointId: 'rp-2', last, plan: incrementalPlan })).toEqual({
        jobId: 'j',
        type: 'incremental',
        reason: 'changes since rp-1 (dirty bitmaps agree with the chain)',
        restorePointId: 'rp-2',
        sincePointId: 'rp-1',
        synthesizedFrom: null,
        disksLeftOut: [],
      });
    });

    it("given the agent cannot read some of the VM's disks, then the decision records them, and the job's state keeps them for its point", () => {
      const leftOut = [{ diskId: 'vdb', reason: "type='network' disks are not supported (only file-backed images)" }];
      const events = run([{ kind: 'decideType', restorePointId: 'rp-2', last, plan: { ...incrementalPlan, leftOut }, maxChainDepth: 32 }], given('auto'));
      expect(events.at(-1)!.data).toMatchObject({ type: 'incremental', disksLeftOut: leftOut });
      expect(fold(job, events)).toMatchObject({ disksLeftOut: leftOut });
    });

    it("given the chain holds the repository's maxChainDepth points, when auto is requested, then it is a synthetic full of the newest point that reads only the changes since it", () => {
      expect(decided(given('auto'), { kind: 'decideType', restorePointId: 'rp-2', last: { ...last, depth: 5 }, plan: incrementalPlan, maxChainDepth: 5 })).toEqual({
        jobId: 'j',
        type: 'full',
        reason: "the chain holds 5 restore points (the repository's maxChainDepth is 5): a synthetic full of rp-1 with the changes since it starts a new chain",
        restorePointId: 'rp-2',
        sincePointId: 'rp-1',
        synthesizedFrom: 'rp-1',
        disksLeftOut: [],
      });
      const state = fold(job, run([{ kind: 'decideType', restorePointId: 'rp-2', last, plan: incrementalPlan, maxChainDepth: 5 }], given('auto')));
      expect(state).toMatchObject({ type: 'full', sincePointId: 'rp-1', synthesizedFrom: 'rp-1' });
    });

    it('given the chain is one point short of the limit, then it is an incremental, and the chain reaches the limit and no more', () => {
      expect(decided(given('auto'), { kind: 'decideType', restorePointId: 'rp-2', last: { ...last, depth: 4 }, plan: incrementalPlan, maxChainDepth: 5 })).toMatchObject({ type: 'incremental', synthesizedFrom: null });
    });

    it('given an incremental was requested of a chain at its limit, then it is the synthetic full: only the changes are read, as asked', () => {
      expect(decided(given('incremental'), { kind: 'decideType', restorePointId: 'rp-2', last, plan: incrementalPlan, maxChainDepth: 2 })).toMatchObject({ type: 'full', sincePointId: 'rp-1', synthesizedFrom: 'rp-1' });
    });

    it('given a chain at its limit that cannot be continued (corrupt newest point, change tracking lost, disks changed), then it is a real full, not a synthetic one', () => {
      const atLimit = { ...last, depth: 9 };
      const corrupt = { ...atLimit, corrupt: 'restore point rp-1 is corrupt' };
      expect(decided(given('auto'), { kind: 'decideType', restorePointId: 'rp-2', last: corrupt, plan: incrementalPlan, maxChainDepth: 2 })).toMatchObject({ type: 'full', sincePointId: null, synthesizedFrom: null });
      expect(decided(given('auto'), { kind: 'decideType', restorePointId: 'rp-2', last: atLimit, plan: { mode: 'full', reason: 'bitmap missing', disks }, maxChainDepth: 2 })).toMatchObject({
        type: 'full',
        reason: 'bitmap missing',
        sincePointId: null,
        synthesizedFrom: null,
      });
      const shrunk = { ...incrementalPlan, disks: [{ diskId: 'd0', virtualSize: 99 }, disks[1]] };
      expect(decided(given('auto'), { kind: 'decideType', restorePointId: 'rp-2', last: atLimit, plan: shrunk, maxChainDepth: 2 })).toMatchObject({ sincePointId: null, synthesizedFrom: null });
      expect(decided(given('full'), { kind: 'decideType', restorePointId: 'rp-2', last: atLimit, plan: incrementalPlan, maxChainDepth: 2 })).toMatchObject({ sincePointId: null, synthesizedFrom: null });
    });

    it('given a full was requested, then it is full whatever the chain', () => {
      expect(decided(given('full'), { kind: 'decideType', restorePointId: 'rp-2', last, plan: incrementalPlan })).toMatchObject({ type: 'full', reason: 'full backup requested', sincePointId: null });
    });

    it('given an empty chain, when auto is requested, then it is full', () => {
      expect(decided(given('auto'), { kind: 'decideType', restorePointId: 'rp-1', last: null, plan: { mode: 'full', reason: 'x', disks } })).toMatchObject({ type: 'full', reason: 'no restore point in this chain yet' });
    });

    it('given the disks changed or one shrank, then auto falls back to full and says why', () => {
      const added = { ...incrementalPlan, disks: [...disks, { diskId: 'd2', virtualSize: 1 }] };
      expect(decided(given('auto'), { kind: 'decideType', restorePointId: 'rp-2', last, plan: added })).toMatchObject({ type: 'full', reason: "the VM's disks changed (d0,d1 -> d0,d1,d2)" });
      const shrunk = { ...incrementalPlan, disks: [{ diskId: 'd0', virtualSize: 99 }, disks[1]] };
      expect(decided(given('auto'), { kind: 'decideType', restorePointId: 'rp-2', last, plan: shrunk })).toMatchObject({ type: 'full', reason: 'disk d0 shrank' });
      const grown = { ...incrementalPlan, disks: [{ diskId: 'd0', virtualSize: 200 }, disks[1]] };
      expect(decided(given('auto'), { kind: 'decideType', restorePointId: 'rp-2', last, plan: grown })).toMatchObject({ type: 'incremental' });
    });

    it("given the agent's change tracking cannot continue, then auto is full with the agent's reason", () => {
      expect(decided(given('auto'), { kind: 'decideType', restorePointId: 'rp-2', last, plan: { mode: 'full', reason: 'bitmap missing', disks } })).toMatchObject({ type: 'full', reason: 'bitmap missing' });
      expect(decided(given('auto'), { kind: 'decideType', restorePointId: 'rp-2', last, plan: { mode: 'full', reason: null, disks } })).toMatchObject({ reason: 'the source cannot continue the chain' });
    });

    it('given the newest point is corrupt, then auto is a full that says why, and an incremental is refused', () => {
      const corrupt = { ...last, corrupt: 'restore point rp-1 is corrupt (1 damaged block(s) in rp-1)' };
      expect(decided(given('auto'), { kind: 'decideType', restorePointId: 'rp-2', last: corrupt, plan: incrementalPlan })).toMatchObject({
        type: 'full',
        reason: 'restore point rp-1 is corrupt (1 damaged block(s) in rp-1)',
        sincePointId: null,
      });
      expect(() => decided(given('incremental'), { kind: 'decideType', restorePointId: 'rp-2', last: corrupt, plan: incrementalPlan })).toThrow(/not possible: restore point rp-1 is corrupt/);
    });

    it('given an incremental was requested but is not possible, then the decision is refused with the reason', () => {
      expect(() => decided(given('incremental'), { kind: 'decideType', restorePointId: 'rp-1', last: null, plan: incrementalPlan })).toThrow('an incremental backup is not possible: no restore point in this chain yet');
      expect(() => decided(given('incremental'), { kind: 'decideType', restorePointId: 'rp-2', last, plan: { mode: 'full', reason: 'bitmap missing', disks } })).toThrow(/not possible: bitmap missing/);
    });
  });

  describe('requests and cancels', () => {
    it('given a job id whose request never got recorded, then voiding it makes its late request fail; a recorded job is never voided', () => {
      const request = { kind: 'request', jobId: 'j2', vmId: 'vm', agentId: 'a', repositoryId: 'r', requestedType: 'auto' } as const;
      const voided = run([{ kind: 'void', jobId: 'j2', reason: 'claim taken over' }, { kind: 'void', jobId: 'j2', reason: 'again' }]);
      expect(voided).toEqual([{ type: 'BackupRequestVoided', data: { jobId: 'j2', reason: 'claim taken over' } }]);
      expect(() => run([request], [...voided])).toThrow('VM vm: the claim of backup job j2 was taken over before its request was recorded');
      const requested = run([request]);
      expect(run([{ kind: 'void', jobId: 'j2', reason: 'x' }], [...requested]).slice(requested.length)).toEqual([]);
    });

    it('given a running job, then a cancel from any hub records it once (the hub running the job reacts to the event)', () => {
      const events = run(happyPath.slice(0, 6));
      const cancelled = run([{ kind: 'cancel', jobId: 'j' }, { kind: 'cancel', jobId: 'j' }], [...events]).slice(events.length);
      expect(cancelled).toEqual([{ type: 'BackupCancelRequested', data: { jobId: 'j' } }]);
    });

    it('given a queued job, then of two hubs that try to start it only the first records the start, naming itself', () => {
      const requested = run(happyPath.slice(0, 1));
      const started = run([{ kind: 'start', hubInstance: 'hub-b' }, { kind: 'start', hubInstance: 'hub-a' }], [...requested]).slice(requested.length);
      expect(started).toEqual([{ type: 'BackupStarted', data: { jobId: 'j', hubInstance: 'hub-b' } }]);
    });

    it('given no such job, then a cancel is not found', () => {
      expect(() => run([{ kind: 'cancel', jobId: 'nope' }])).toThrow('backup job nope does not exist');
    });
  });

  it("maps the agent's reports onto decisions; finished and failed are signals for the workflow, not facts of the job", () => {
    expect(decisionOf({ type: 'snapshot-removed', snapshotId: 's' })).toEqual({ kind: 'snapshotRemoved' });
    expect(decisionOf({ type: 'transfer-started', diskId: 'd0', bytesPlanned: 5 })).toEqual({ kind: 'transferStarted', diskId: 'd0', bytesPlanned: 5 });
    const events = run(happyPath.slice(0, 11));
    expect(run([decisionOf({ type: 'finished' }), decisionOf({ type: 'failed', reason: 'x' })], [...events]).slice(events.length)).toEqual([]);
  });
});
