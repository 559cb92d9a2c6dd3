import { PolicyDefinition } from '../policy.events';
import { buildProtectionReport, ProtectionFacts } from './protection-report';

const definition = (over: Partial<PolicyDefinition> = {}): PolicyDefinition => ({
  name: 'nightly',
  vms: { namePattern: 'web-*' },
  repositoryId: 'r1',
  schedule: { cron: '0 2 * * *', timezone: 'Europe/Berlin', catchUp: 'once' },
  fullEvery: null,
  retention: { keepLast: 3 },
  rpoHours: 24,
  enabled: true,
  ...over,
});
const now = new Date('2024-05-10T12:00:00Z');
const facts = (over: Partial<ProtectionFacts> = {}): ProtectionFacts => ({
  policies: [{ policyId: 'p1', definition: definition(), createdAt: new Date('2024-05-01T00:00:00Z'), deletedAt: null }],
  vms: [
    { vmId: 'a', name: 'web-1', agentId: 'ag' },
    { vmId: 'b', name: 'web-2', agentId: 'ag' },
    { vmId: 'c', name: 'db-1', agentId: 'ag' },
  ],
  newest: [
    { vmId: 'a', restorePointId: 'rpA', repositoryId: 'r1', createdAt: new Date('2024-05-10T00:00:00Z') },
    { vmId: 'b', restorePointId: 'rpB', repositoryId: 'r1', createdAt: new Date('2024-05-08T00:00:00Z') },
    { vmId: 'c', restorePointId: 'rpC', repositoryId: 'r1', createdAt: new Date('2024-05-10T00:00:00Z') },
  ],
  // b: failed, completed, failed, failed (the projector counts them: protection-report.projector.int.spec.ts)
  streaks: [{ vmId: 'b', failuresInRow: 2 }],
  drills: [],
  recycled: [],
  ...over,
});

describe('protection report', () => {
  it('says per VM: its policies, newest point and age, RPO status, failures in a row, next slot', () => {
    const [a, b, c] = buildProtectionReport(facts(), now);
    expect(a).toMatchObject({ vmId: 'a', status: 'protected', state: 'protected', overdueHours: null, rpoHours: 24, lastRestorePoint: { restorePointId: 'rpA', ageHours: 12 }, failuresInRow: 0, policies: [{ policyId: 'p1' }] });
    // 02:00 in Berlin (CEST) is 00:00Z: the next one after 12:00Z on the 10th is the 11th
    expect(a.nextSlot).toBe('2024-05-11T00:00:00.000Z');
    // 60 h old against an RPO of 24 h: 36 h over it
    expect(b).toMatchObject({ vmId: 'b', status: 'at-risk', state: 'at-risk', overdueHours: 36, lastRestorePoint: { ageHours: 60 }, failuresInRow: 2 });
    // backed up, but nothing schedules it: not the same to-do as a VM never backed up
    expect(c).toMatchObject({ vmId: 'c', status: 'unprotected', state: 'no-policy', overdueHours: null, policies: [], rpoHours: null, nextSlot: null });
  });

  it('is unprotected without a restore point, and a disabled or deleted policy protects nothing', () => {
    expect(buildProtectionReport(facts({ newest: [] }), now)[0]).toMatchObject({ status: 'unprotected', state: 'never-backed-up', lastRestorePoint: null, rpoHours: 24 });
    expect(buildProtectionReport(facts({ newest: [] }), now)[2]).toMatchObject({ vmId: 'c', state: 'never-backed-up', rpoHours: null });
    const disabled = facts({ policies: [{ policyId: 'p1', definition: definition({ enabled: false }), createdAt: now, deletedAt: null }] });
    expect(buildProtectionReport(disabled, now)[0]).toMatchObject({ status: 'unprotected', state: 'no-policy', nextSlot: null, policies: [{ policyId: 'p1', enabled: false }] });
    const deleted = facts({ policies: [{ policyId: 'p1', definition: definition(), createdAt: now, deletedAt: now }] });
    expect(buildProtectionReport(deleted, now)[0]).toMatchObject({ status: 'unprotected', policies: [] });
  });

  it('counts the points of each VM waiting in the recycle bin, also of a VM with no other point', () => {
    const report = buildProtectionReport(facts({ recycled: [{ vmId: 'a', points: 2 }, { vmId: 'gone', points: 1 }] }), now);
    expect(report.map((v) => [v.vmId, v.recycledPoints])).toEqual([['a', 2], ['b', 0], ['c', 0], ['gone', 1]]);
    expect(report[3]).toMatchObject({ status: 'unprotected', lastRestorePoint: null });
  });

  it("names the disks no point of a VM holds, beside its state, which is about the RPO only", () => {
    const lacking = [{ diskId: 'vdb', reason: "type='network' disks are not supported (only file-backed images)" }];
    const report = buildProtectionReport(facts({ leftOut: [{ vmId: 'a', disks: lacking }] }), now);
    expect(report.map((v) => [v.vmId, v.state, v.disksLeftOut])).toEqual([['a', 'protected', lacking], ['b', 'at-risk', []], ['c', 'no-policy', []]]);
  });

  it('reports a VM known only by its failed jobs, with them', () => {
    const report = buildProtectionReport(facts({ vms: [], newest: [], streaks: [{ vmId: 'gone', failuresInRow: 2 }] }), now);
    expect(report).toHaveLength(1);
    expect(report[0]).toMatchObject({ vmId: 'gone', name: null, status: 'unprotected', failuresInRow: 2 });
  });

  it("shows each VM's newest passed drill with its boot time, and the newest drill's verdict", () => {
    const drills = [
      { vmId: 'a', last: { at: new Date('2024-05-10T03:00:00Z'), passed: false, reason: 'its guest agent did not answer within 300 s', restorePointId: 'rpA' }, passed: { at: new Date('2024-05-09T03:00:00Z'), bootMs: 4100, restorePointId: 'rpA0' } },
      { vmId: 'b', last: { at: new Date('2024-05-10T03:00:00Z'), passed: false, reason: 'the domain is shut off', restorePointId: 'rpB' }, passed: null },
    ];
    const [a, b, c] = buildProtectionReport(facts({ drills }), now);
    expect(a.drill).toEqual({ lastPassedAt: '2024-05-09T03:00:00.000Z', bootMs: 4100, restorePointId: 'rpA0', lastAt: '2024-05-10T03:00:00.000Z', lastPassed: false, lastReason: 'its guest agent did not answer within 300 s' });
    expect(b.drill).toMatchObject({ lastPassedAt: null, bootMs: null, lastPassed: false });
    expect(c.drill).toBeNull();
  });
});
