import { fold } from '../eventing/aggregate';
import { CLAIM_GRACE_MS, ClaimPointId, pointIdAggregate } from './point-id.aggregate';

const at = (ms: number) => new Date(Date.UTC(2026, 10, 30) + ms).toISOString();
const claim = (repositoryId: string, now: string, gone?: ClaimPointId['gone']): ClaimPointId => ({ restorePointId: 'rp-1', repositoryId, vmId: 'vm1', now, ...(gone ? { gone } : {}) });

describe('the claim of a restore point id', () => {
  const claimedByA = fold(pointIdAggregate, pointIdAggregate.decide(claim('repo-a', at(0)), pointIdAggregate.initialState()));

  it('is taken by the first repository that records the id, and taken again there changes nothing', () => {
    expect(claimedByA.holder).toEqual({ repositoryId: 'repo-a', vmId: 'vm1', claimedAt: at(0) });
    expect(pointIdAggregate.decide(claim('repo-a', at(5)), claimedByA)).toEqual([]);
  });

  it('is refused to another repository (a copy rescanned at the same moment) naming where the point is held', () => {
    expect(() => pointIdAggregate.decide(claim('repo-b', at(5)), claimedByA)).toThrow('held already in repository repo-a as a point of VM vm1');
  });

  it('passes to another repository only once its holder no longer has the point and claimed it longer than the grace ago', () => {
    const gone = { repositoryId: 'repo-a', vmId: 'vm1' };
    // the holder may be about to record the point: its claim is fresh
    expect(() => pointIdAggregate.decide(claim('repo-b', at(CLAIM_GRACE_MS - 1), gone), claimedByA)).toThrow(/held already in repository repo-a/);
    // another holder than the one found gone (it changed meanwhile): refused
    expect(() => pointIdAggregate.decide(claim('repo-b', at(CLAIM_GRACE_MS), { repositoryId: 'repo-c', vmId: 'vm1' }), claimedByA)).toThrow(/held already in repository repo-a/);
    expect(pointIdAggregate.decide(claim('repo-b', at(CLAIM_GRACE_MS), gone), claimedByA)).toEqual([{ type: 'RestorePointIdClaimed', data: { restorePointId: 'rp-1', repositoryId: 'repo-b', vmId: 'vm1', claimedAt: at(CLAIM_GRACE_MS) } }]);
  });
});
