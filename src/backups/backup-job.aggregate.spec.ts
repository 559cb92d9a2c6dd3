import { fold } from '../eventing/aggregate';
import { backupJobAggregate as job, BackupJobCommand } from './backup-job.aggregate';
import { BackupEvent, Target } from './backup.events';

const target = (diskId: string): Target => ({ diskId, file: `vm/${diskId}/rp.qcow2`, parentFile: null, virtualSize: 1, leaseId: `l-${diskId}`, port: 10100, exportName: diskId });
const happyPath: BackupJobCommand[] = [
  { kind: 'request', jobId: 'j', vmId: 'vm', agentId: 'a', repositoryId: 'r', requestedType: 'auto' },
  { kind: 'start' },
  { kind: 'decideType', type: 'full', reason: 'no restore point yet', restorePointId: 'rp', sincePointId: null },
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
    expect(() => run([{ kind: 'cancel' }], [...events])).toThrow(/already failed/);
  });

  it('refuses progress for a disk that is not part of the job', () => {
    expect(() => run([...happyPath.slice(0, 6), { kind: 'transferStarted', diskId: 'd9', bytesPlanned: 1 }])).toThrow(/disk d9 is not part/);
  });
});
