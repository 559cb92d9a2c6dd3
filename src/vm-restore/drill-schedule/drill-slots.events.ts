import { DomainEvent } from '../../eventing/aggregate';

export const DRILL_SLOT_FIRED = 'DrillSlotFired';
export const DRILL_SLOT_SKIPPED = 'DrillSlotSkipped';
export const DRILL_SLOTS_MISSED = 'DrillSlotsMissed';

/**
 * A hub took a drill slot of the policy on `agentId`'s host and names the drill it requests of this VM's
 * newest point: restore `restoreId` (stream vm-restore-<restoreId>), unless a DrillSlotSkipped for it follows.
 */
export type DrillSlotFired = DomainEvent<
  typeof DRILL_SLOT_FIRED,
  { policyId: string; agentId: string; slot: string; vmId: string; restorePointId: string; restoreId: string; catchUp: boolean; firedAt: string; hubInstance: string }
>;
/** The slot drills nothing of this VM, and why (no point in the repository, its previous drill still running, the request refused). */
export type DrillSlotSkipped = DomainEvent<typeof DRILL_SLOT_SKIPPED, { policyId: string; agentId: string; slot: string; vmId: string; restoreId: string | null; reason: string }>;
/** Drill slots that passed while no hub running the scheduler held the agent's session: `count` of them, `firstSlot` to `slot`. */
export type DrillSlotsMissed = DomainEvent<typeof DRILL_SLOTS_MISSED, { policyId: string; agentId: string; slot: string; firstSlot: string; count: number; reason: string }>;

export type DrillSlotEvent = DrillSlotFired | DrillSlotSkipped | DrillSlotsMissed;

/**
 * One stream per policy and drill host: only a hub holding the host's agent session can boot a drill there, so
 * that hub plans the host's slots, and the stream's expected revision lets exactly one hub take each slot.
 */
export const drillSlotsStream = (policyId: string, agentId: string) => `drill-slots-policy-${policyId}-agent-${agentId}`;
