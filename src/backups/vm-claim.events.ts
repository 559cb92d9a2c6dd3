import { DomainEvent } from '../eventing/aggregate';

export const BACKUP_JOB_CLAIMED = 'BackupJobClaimed';
export const BACKUP_JOB_RELEASED = 'BackupJobReleased';

/** `claimedAt`: when the request took the VM; a claim whose job never came to exist is given up only after a grace. */
export type BackupJobClaimed = DomainEvent<typeof BACKUP_JOB_CLAIMED, { vmId: string; jobId: string; claimedAt: string }>;
export type BackupJobReleased = DomainEvent<typeof BACKUP_JOB_RELEASED, { vmId: string; jobId: string; reason: string }>;
export type VmClaimEvent = BackupJobClaimed | BackupJobReleased;

export const VM_CLAIM_STREAM_PREFIX = 'vm-backups-';
/** One stream per VM: its expected revision is what lets only one request at a time take the VM. */
export const vmClaimStream = (vmId: string) => `${VM_CLAIM_STREAM_PREFIX}${vmId}`;
