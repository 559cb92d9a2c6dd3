import { Aggregate } from '../eventing/aggregate';
import { DomainError } from '../eventing/domain-error';
import { RESTORE_POINT_ID_CLAIMED, RestorePointIdClaimed } from './point-id.events';

export interface PointIdHolder {
  repositoryId: string;
  vmId: string;
}

export interface PointIdState {
  holder: (PointIdHolder & { claimedAt: string }) | null;
}

export interface ClaimPointId extends PointIdHolder {
  restorePointId: string;
  now: string;
  /** A holder the claimant found without the point in its chain (deleted, or its recording failed). */
  gone?: PointIdHolder;
}

/**
 * Long enough for the rescan that claimed an id to record the point in its chain (the next command, milliseconds
 * later): until then a holder without the point is one about to have it.
 */
export const CLAIM_GRACE_MS = 60_000;

const same = (a: PointIdHolder, b: PointIdHolder) => a.repositoryId === b.repositoryId && a.vmId === b.vmId;

/**
 * A restore point id names one point on a hub: claimed once, by the repository and VM that hold it; claimed again
 * there, nothing new; claimed elsewhere, refused, unless its holder no longer has the point and claimed it long ago.
 */
export const pointIdAggregate: Aggregate<PointIdState, ClaimPointId, RestorePointIdClaimed> = {
  initialState: () => ({ holder: null }),
  evolve: (_state, { data }) => ({ holder: { repositoryId: data.repositoryId, vmId: data.vmId, claimedAt: data.claimedAt } }),
  decide(claim, { holder }) {
    const claimed = (): RestorePointIdClaimed[] => [{ type: RESTORE_POINT_ID_CLAIMED, data: { restorePointId: claim.restorePointId, repositoryId: claim.repositoryId, vmId: claim.vmId, claimedAt: claim.now } }];
    if (!holder) return claimed();
    if (same(holder, claim)) return [];
    if (claim.gone && same(holder, claim.gone) && Date.parse(claim.now) - Date.parse(holder.claimedAt) >= CLAIM_GRACE_MS) return claimed();
    throw new DomainError('conflict', `held already in repository ${holder.repositoryId} as a point of VM ${holder.vmId}`);
  },
};
