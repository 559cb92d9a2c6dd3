import { fold } from '../eventing/aggregate';
import { holderState, UNRECORDED_CLAIM_GRACE_MS, vmClaimAggregate as claims, VmClaimCommand } from './vm-claim.aggregate';
import { VmClaimEvent } from './vm-claim.events';

const AT = '2030-01-01T00:00:00.000Z';
const claim = (jobId: string, holder: Extract<VmClaimCommand, { kind: 'claim' }>['holder'] = null): VmClaimCommand => ({ kind: 'claim', vmId: 'vm', jobId, at: AT, holder });

function run(commands: VmClaimCommand[], events: VmClaimEvent[] = []): VmClaimEvent[] {
  for (const c of commands) events.push(...claims.decide(c, fold(claims, events)));
  return events;
}

describe('one unfinished backup job per VM', () => {
  it('given a free VM, then a request claims it; the same job claiming again records nothing', () => {
    expect(run([claim('j1'), claim('j1')])).toEqual([{ type: 'BackupJobClaimed', data: { vmId: 'vm', jobId: 'j1', claimedAt: AT } }]);
  });

  it('given the VM already has an unfinished job, then a new request is refused naming it', () => {
    const held = run([claim('j1')]);
    expect(() => run([claim('j2')], [...held])).toThrow('VM vm already has a backup job running: j1');
    expect(() => run([claim('j2', { jobId: 'j1', state: 'running' })], [...held])).toThrow('VM vm already has a backup job running: j1');
  });

  it('given the holder the requester checked is no longer the one holding (a race), then the request is refused', () => {
    const held = run([claim('j1'), claim('j3', { jobId: 'j1', state: 'over' })]);
    expect(() => run([claim('j2', { jobId: 'j1', state: 'over' })], [...held])).toThrow('VM vm already has a backup job running: j3');
  });

  it('given the holding job ended or never came to exist, then the claim is taken over: released, then claimed', () => {
    for (const [state, reason] of [['over', 'the job had ended'], ['never', 'the job was never recorded']] as const) {
      const held = run([claim('j1')]);
      expect(run([claim('j2', { jobId: 'j1', state })], [...held]).slice(held.length)).toEqual([
        { type: 'BackupJobReleased', data: { vmId: 'vm', jobId: 'j1', reason } },
        { type: 'BackupJobClaimed', data: { vmId: 'vm', jobId: 'j2', claimedAt: AT } },
      ]);
    }
  });

  it('releases only the holding job, once; the VM is free after it', () => {
    const release = (jobId: string): VmClaimCommand => ({ kind: 'release', vmId: 'vm', jobId, reason: 'completed' });
    const held = run([claim('j1'), release('j2')]);
    expect(held).toHaveLength(1);
    const released = run([release('j1'), release('j1')], [...held]).slice(held.length);
    expect(released).toEqual([{ type: 'BackupJobReleased', data: { vmId: 'vm', jobId: 'j1', reason: 'completed' } }]);
    expect(run([claim('j2')], [...held, ...released]).at(-1)).toEqual({ type: 'BackupJobClaimed', data: { vmId: 'vm', jobId: 'j2', claimedAt: AT } });
  });

  it("reads the holder's own stream: a recorded job is running or over; an unrecorded one is on its way within the grace, maybe never after it", () => {
    const now = new Date(Date.parse(AT) + UNRECORDED_CLAIM_GRACE_MS);
    expect(holderState({ exists: true, terminal: false, voided: false }, AT, now)).toBe('running');
    expect(holderState({ exists: true, terminal: true, voided: false }, AT, now)).toBe('over');
    expect(holderState({ exists: false, terminal: false, voided: true }, AT, now)).toBe('never');
    expect(holderState({ exists: false, terminal: false, voided: false }, AT, new Date(now.getTime() - 1))).toBe('running');
    expect(holderState({ exists: false, terminal: false, voided: false }, AT, now)).toBe('maybe-never');
  });
});
