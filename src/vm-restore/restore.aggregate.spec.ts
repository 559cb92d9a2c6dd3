import { fold } from '../eventing/aggregate';
import { RestoreCommand, restoreAggregate as restore } from './restore.aggregate';
import { RestoreEvent, RestoreExport } from './restore.events';

const exported = (diskId: string): RestoreExport => ({ diskId, virtualSize: 100, file: `vm/${diskId}/rp.qcow2`, leaseId: `l-${diskId}`, port: 10100, exportName: `r-${diskId}` });
const request: RestoreCommand = { kind: 'request', restoreId: 'r', restorePointId: 'rp', vmId: 'vm', repositoryId: 'repo', agentId: 'a', mode: 'full', target: { kind: 'new-domain', name: 'web2', storageDir: null, start: true }, definition: null, force: false, knownDamage: [], requestedAt: '2026-11-23T10:00:00.000Z' };
const happyPath: RestoreCommand[] = [
  request,
  { kind: 'start', hubInstance: 'hub-a', exports: [exported('vda'), exported('vdb')] },
  { kind: 'report', report: { type: 'restore-started', disks: [{ diskId: 'vda', path: '/i/web2-vda.qcow2' }, { diskId: 'vdb', path: '/i/web2-vdb.qcow2' }] } },
  { kind: 'report', report: { type: 'disk-progressed', diskId: 'vda', bytesDone: 50, bytesPlanned: 100, rate: 10 } },
  { kind: 'report', report: { type: 'disk-completed', diskId: 'vda', bytesWritten: 100, bytesZeroed: 0, bytesPlanned: 100, durationMs: 5, verifiedBlocks: 2 } },
  { kind: 'report', report: { type: 'disk-completed', diskId: 'vdb', bytesWritten: 10, bytesZeroed: 0, bytesPlanned: 10, durationMs: 5, verifiedBlocks: 1 } },
  { kind: 'report', report: { type: 'domain-defined', name: 'web2', uuid: 'u' } },
  { kind: 'complete', domain: { name: 'web2', uuid: 'u', started: true }, durationMs: 42 },
];

function run(commands: RestoreCommand[], events: RestoreEvent[] = []): RestoreEvent[] {
  for (const c of commands) events.push(...restore.decide(c, fold(restore, events)));
  return events;
}

describe('restore rules', () => {
  it('walks a restore from request to a defined domain, each disk with its path and progress', () => {
    const events = run(happyPath);
    expect(events.map((e) => e.type)).toEqual(['RestoreRequested', 'RestoreStarted', 'RestoreDisksPlanned', 'RestoreDiskProgressed', 'RestoreDiskCompleted', 'RestoreDiskCompleted', 'RestoreDomainDefined', 'RestoreCompleted']);
    const state = fold(restore, events);
    expect(state.phase).toBe('completed');
    expect(Object.values(state.disks).map((d) => [d.diskId, d.path, d.done, d.bytesDone, d.verifiedBlocks])).toEqual([
      ['vda', '/i/web2-vda.qcow2', true, 100, 2],
      ['vdb', '/i/web2-vdb.qcow2', true, 10, 1],
    ]);
    expect(state.domain).toEqual({ name: 'web2', uuid: 'u', started: true });
  });

  it('cannot complete before every disk is written', () => {
    expect(() => run([...happyPath.slice(0, 5), happyPath.at(-1)!])).toThrow(/disks vdb were not written/);
  });

  it('refuses reports before the start and about disks the point does not have; reports after the end change nothing', () => {
    expect(() => run([request, happyPath[3]])).toThrow(/has not started/);
    expect(() => run([...happyPath.slice(0, 2), { kind: 'report', report: { type: 'disk-progressed', diskId: 'sdz', bytesDone: 1, bytesPlanned: 1, rate: 1 } }])).toThrow(/no disk sdz/);
    const ended = run(happyPath);
    expect(restore.decide(happyPath[3], fold(restore, ended))).toEqual([]);
  });

  it('a cancel is recorded once and ends as cancelled; nothing is cancelled or failed after the end', () => {
    const events = run([...happyPath.slice(0, 3), { kind: 'cancel' }, { kind: 'cancel' }, { kind: 'cancelled' }]);
    expect(events.filter((e) => e.type === 'RestoreCancelRequested')).toHaveLength(1);
    expect(events.at(-1)).toEqual({ type: 'RestoreCancelled', data: { restoreId: 'r', phase: 'writing' } });
    expect(() => run([{ kind: 'cancel' }], events)).toThrow(/has ended \(cancelled\)/);
    expect(() => run([{ kind: 'fail', reason: 'x', damaged: [] }], run(happyPath))).toThrow(/has ended \(completed\)/);
  });

  it('a failure records the phase it happened in and the damaged blocks', () => {
    const damaged = [{ diskId: 'vdb', offset: 65536, length: 65536, expected: 'a'.repeat(64), actual: 'b'.repeat(64) }];
    const events = run([...happyPath.slice(0, 4), { kind: 'fail', reason: 'block differs', damaged }]);
    expect(events.at(-1)).toEqual({ type: 'RestoreFailed', data: { restoreId: 'r', reason: 'block differs', phase: 'writing', damaged } });
  });

  it('one request per restore id, and a start only once', () => {
    expect(() => run([request, request])).toThrow(/already exists/);
    expect(run([request, happyPath[1], happyPath[1]]).filter((e) => e.type === 'RestoreStarted')).toHaveLength(1);
  });

  it("a drill ends in its verdict: passed with the boot time and the point's consistency, or failed with the reason; only a drill has one", () => {
    const drill: RestoreCommand = { ...request, mode: 'instant', target: { kind: 'drill', timeoutSeconds: 60 } } as RestoreCommand;
    const screenshot = { file: 'drills/r.txt', contentType: 'text/plain', bytes: 5, sha256: 'c'.repeat(64) };
    const passed = run([drill, happyPath[1], { kind: 'drillResult', passed: true, bootMs: 4200, reason: null, consistency: 'application', screenshot }]);
    expect(passed.at(-1)).toEqual({ type: 'RecoveryDrillPassed', data: { restoreId: 'r', restorePointId: 'rp', vmId: 'vm', bootMs: 4200, consistency: 'application', screenshot } });
    expect(fold(restore, passed).phase).toBe('completed');
    const failed = run([drill, happyPath[1], { kind: 'drillResult', passed: false, bootMs: null, reason: 'its guest agent did not answer within 60 s', consistency: null, screenshot: null }]);
    expect(failed.at(-1)).toEqual({ type: 'RecoveryDrillFailed', data: { restoreId: 'r', restorePointId: 'rp', vmId: 'vm', reason: 'its guest agent did not answer within 60 s', screenshot: null } });
    expect(fold(restore, failed).phase).toBe('failed');
    expect(() => run([...happyPath.slice(0, 2), { kind: 'drillResult', passed: true, bootMs: 1, reason: null, consistency: null, screenshot: null }])).toThrow(/is not a drill/);
  });

  it('an instant recovery runs before its disks are local, and ends local then completed', () => {
    const instant: RestoreCommand = { ...request, mode: 'instant' } as RestoreCommand;
    const events = run([
      instant,
      happyPath[1],
      { kind: 'report', report: { type: 'instant-running', name: 'web2', uuid: 'u' }, sinceRequestMs: 3100 },
      { kind: 'report', report: { type: 'disk-completed', diskId: 'vda', bytesWritten: 0, bytesZeroed: 0, bytesPlanned: 0, durationMs: 0, verifiedBlocks: 0 } },
      { kind: 'report', report: { type: 'disk-completed', diskId: 'vdb', bytesWritten: 0, bytesZeroed: 0, bytesPlanned: 0, durationMs: 0, verifiedBlocks: 0 } },
      { kind: 'complete', domain: { name: 'web2', uuid: 'u', started: true }, durationMs: 9000 },
    ]);
    expect(events.map((e) => e.type).slice(2)).toEqual(['InstantRecoveryRunning', 'RestoreDiskCompleted', 'RestoreDiskCompleted', 'InstantRecoveryLocal', 'RestoreCompleted']);
    expect(events[2].data).toEqual({ restoreId: 'r', name: 'web2', uuid: 'u', runningMs: 3100 });
    expect(() => run([...happyPath.slice(0, 2), { kind: 'report', report: { type: 'instant-running', name: 'x', uuid: 'u' } }])).toThrow(/not an instant recovery/);
    // the agent's last word stands for its disks when their own reports met a hub that was away
    const unreported = run([instant, happyPath[1], { kind: 'report', report: { type: 'instant-running', name: 'web2', uuid: 'u' } }, { kind: 'complete', domain: { name: 'web2', uuid: 'u', started: true }, durationMs: 1 }]);
    expect(unreported.map((e) => e.type).slice(-2)).toEqual(['InstantRecoveryLocal', 'RestoreCompleted']);
    expect(Object.values(fold(restore, unreported).disks).every((d) => d.done)).toBe(true);
  });

  it("an instant recovery's copy that stalls says why, once per change, until it goes on or the recovery ends; only a copy under way stalls", () => {
    const instant: RestoreCommand = { ...request, mode: 'instant' } as RestoreCommand;
    const running: RestoreCommand = { kind: 'report', report: { type: 'instant-running', name: 'web2', uuid: 'u' } };
    const stalled = (reason: string | null): RestoreCommand => ({ kind: 'report', report: { type: 'copy-stalled', reason } });
    const events = run([instant, happyPath[1], running, stalled(null), stalled('no space'), stalled('no space'), stalled('shut off'), stalled(null), stalled(null), stalled('no space')]);
    expect(events.slice(3)).toEqual([
      { type: 'InstantRecoveryStalled', data: { restoreId: 'r', reason: 'no space' } },
      { type: 'InstantRecoveryStalled', data: { restoreId: 'r', reason: 'shut off' } },
      { type: 'InstantRecoveryResumed', data: { restoreId: 'r' } },
      { type: 'InstantRecoveryStalled', data: { restoreId: 'r', reason: 'no space' } },
    ]);
    expect(fold(restore, events).stalled).toBe('no space');
    const local = run([instant, happyPath[1], running, stalled('no space'), { kind: 'complete', domain: { name: 'web2', uuid: 'u', started: true }, durationMs: 1 }]);
    expect(fold(restore, local).stalled).toBeNull();
    const cancelled = run([instant, happyPath[1], running, stalled('no space'), { kind: 'cancel' }, { kind: 'cancelled' }]);
    expect(fold(restore, cancelled)).toMatchObject({ phase: 'cancelled', stalled: null });
    expect(() => run([instant, happyPath[1], stalled('no space')])).toThrow(/has no background copy under way/);
  });
});
