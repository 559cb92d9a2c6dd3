import { Aggregate } from '../eventing/aggregate';
import { DomainError } from '../eventing/domain-error';
import { BACKUP_JOB_CLAIMED, BACKUP_JOB_RELEASED, VmClaimEvent } from './vm-claim.events';

export interface VmClaimState {
  /** The job that holds the VM, or null. */
  jobId: string | null;
  claimedAt: string | null;
}

/**
 * What the requester found out about the job holding the claim, read from that job's own stream:
 * `over` when it completed or failed, `never` when its request was given up before it was recorded.
 */
export type HolderState = 'running' | 'over' | 'never';

export type VmClaimCommand =
  /** `holder`: the job the requester saw holding the VM and what became of it (null when it saw none). */
  | { kind: 'claim'; vmId: string; jobId: string; at: string; holder: { jobId: string; state: HolderState } | null }
  | { kind: 'release'; vmId: string; jobId: string; reason: string };

/** A claim whose job has not been recorded after this long belongs to a request that died in between. */
export const UNRECORDED_CLAIM_GRACE_MS = 30_000;

/**
 * One unfinished backup job per VM. The claim is appended with the stream's expected revision, so of
 * two requests that race (in one hub process or in two) exactly one appends; the other decides again
 * on the newer state and is refused. A claim left by a job that ended or never came to exist does
 * not block the VM: the requester takes it over, having checked that job's own stream.
 */
export const vmClaimAggregate: Aggregate<VmClaimState, VmClaimCommand, VmClaimEvent> = {
  initialState: () => ({ jobId: null, claimedAt: null }),

  evolve(state, event) {
    switch (event.type) {
      case BACKUP_JOB_CLAIMED:
        return { jobId: event.data.jobId, claimedAt: event.data.claimedAt };
      case BACKUP_JOB_RELEASED:
        return state.jobId === event.data.jobId ? { jobId: null, claimedAt: null } : state;
    }
  },

  decide(command, state) {
    if (command.kind === 'release') {
      return state.jobId === command.jobId ? [{ type: BACKUP_JOB_RELEASED, data: { vmId: command.vmId, jobId: command.jobId, reason: command.reason } }] : [];
    }
    const { vmId, jobId, at, holder } = command;
    const claimed: VmClaimEvent = { type: BACKUP_JOB_CLAIMED, data: { vmId, jobId, claimedAt: at } };
    if (state.jobId === null) return [claimed];
    if (state.jobId === jobId) return [];
    const busy = new DomainError('conflict', `VM ${vmId} already has a backup job running: ${state.jobId}`);
    // The holder seen may not be the one holding now: another request took the VM in between.
    if (!holder || holder.jobId !== state.jobId || holder.state === 'running') throw busy;
    const reason = holder.state === 'over' ? 'the job had ended' : 'the job was never recorded';
    return [{ type: BACKUP_JOB_RELEASED, data: { vmId, jobId: state.jobId, reason } }, claimed];
  },
};

/** What the holder's stream says, for a claim made at `claimedAt`, seen at `now`: a job not yet recorded within the grace may still be on its way. */
export function holderState(job: { exists: boolean; terminal: boolean; voided: boolean }, claimedAt: string | null, now: Date): HolderState | 'maybe-never' {
  if (job.exists) return job.terminal ? 'over' : 'running';
  if (job.voided) return 'never';
  const age = claimedAt ? now.getTime() - Date.parse(claimedAt) : Infinity;
  return age >= UNRECORDED_CLAIM_GRACE_MS ? 'maybe-never' : 'running';
}
