import { DomainEvent } from '../eventing/aggregate';
import { RequestedType } from '../backups/backup.events';

export const SLOT_FIRED = 'SlotFired';
export const SLOT_SKIPPED = 'SlotSkipped';
export const SLOT_MISSED = 'SlotMissed';
export const SLOT_RETRIED = 'SlotRetried';

/**
 * A hub took the slot for this VM and named the job it requests: `jobId` is the backup job of the
 * slot (stream backup-job-<jobId>) unless a SlotSkipped for the same slot and VM follows.
 * `slot`: the slot's instant (ISO); `manual`: `POST /policies/{id}/run` rather than the calendar.
 */
export type SlotFired = DomainEvent<
  typeof SLOT_FIRED,
  { policyId: string; slot: string; vmId: string; jobId: string; requestedType: RequestedType; manual: boolean; catchUp: boolean; firedAt: string; hubInstance: string }
>;
/**
 * The slot made no backup of this VM, and why (its VM already had a job, the VM is gone, ...);
 * `vmId` null: the policy selected no VM at that slot.
 */
export type SlotSkipped = DomainEvent<typeof SLOT_SKIPPED, { policyId: string; slot: string; vmId: string | null; jobId: string | null; reason: string }>;
/** Slots that passed while no hub was running the scheduler: `count` of them, from `firstSlot` to `slot` (the newest). */
export type SlotMissed = DomainEvent<typeof SLOT_MISSED, { policyId: string; slot: string; firstSlot: string; count: number; reason: string }>;
/** The hub that fired the slot died before the job's request was recorded: another request is made under the same job id. */
export type SlotRetried = DomainEvent<typeof SLOT_RETRIED, { policyId: string; slot: string; vmId: string; jobId: string; attempt: number; retriedAt: string; hubInstance: string }>;

export type PolicySlotEvent = SlotFired | SlotSkipped | SlotMissed | SlotRetried;

/** Not under `policy-`: a reader of policy definitions by stream prefix never meets slot events. */
export const POLICY_SLOTS_STREAM_PREFIX = 'slots-policy-';
/** One stream per policy: its expected revision is what lets exactly one hub take each slot. */
export const policySlotsStream = (policyId: string) => `${POLICY_SLOTS_STREAM_PREFIX}${policyId}`;
