import { DomainEvent } from '../eventing/aggregate';

export const VM_CLAIMED = 'VmClaimed';
export const VM_CLAIM_REFUSED = 'VmClaimRefused';
export const VM_OWNERSHIP_MOVED = 'VmOwnershipMoved';

/** The first agent to report a VM owns it: its backups, restores and tenant follow that agent, not a later reporter. */
export type VmClaimed = DomainEvent<typeof VM_CLAIMED, { vmId: string; agentId: string }>;
/** Another agent reported a VM it does not own; recorded once per claimant until an admin resolves it. */
export type VmClaimRefused = DomainEvent<typeof VM_CLAIM_REFUSED, { vmId: string; ownerAgentId: string; claimantAgentId: string }>;
/** An admin moved the VM to another agent (a host migration); `fromAgentId` is null when nobody owned it yet. */
export type VmOwnershipMoved = DomainEvent<typeof VM_OWNERSHIP_MOVED, { vmId: string; fromAgentId: string | null; toAgentId: string; reason: string }>;
export type VmOwnershipEvent = VmClaimed | VmClaimRefused | VmOwnershipMoved;

export const VM_OWNER_STREAM_PREFIX = 'vm-owner-';
/** One stream per VM: its expected revision makes two agents' first reports race for one owner, not two. */
export const vmOwnerStream = (vmId: string) => `${VM_OWNER_STREAM_PREFIX}${vmId}`;
