import { Aggregate } from '../../eventing/aggregate';
import { DRILL_SLOT_FIRED, DRILL_SLOT_SKIPPED, DRILL_SLOTS_MISSED, DrillSlotEvent } from './drill-slots.events';

export interface DrillSlotsState {
  /** The newest drill slot handled (fired, skipped or missed): the scheduler goes on after it. */
  lastSlot: string | null;
}

/** What the scheduler chose for one VM at a slot: its newest point to drill, or why there is none. */
export type DrillChoice = { vmId: string; restorePointId: string; restoreId: string } | { vmId: string; skip: string };

export type DrillSlotsCommand =
  /** The due slot as planned from the state the hub saw (`basedOn`): when another hub handled it meanwhile, nothing is recorded. */
  | {
      kind: 'fire';
      policyId: string;
      agentId: string;
      basedOn: string | null;
      missed: { firstSlot: string; slot: string; count: number; reason: string } | null;
      fire: { slot: string; catchUp: boolean } | null;
      drills: DrillChoice[];
      at: string;
      hubInstance: string;
    }
  /** A drill the slot fired whose request was refused. */
  | { kind: 'skip'; policyId: string; agentId: string; slot: string; vmId: string; restoreId: string; reason: string };

export const drillSlotsAggregate: Aggregate<DrillSlotsState, DrillSlotsCommand, DrillSlotEvent> = {
  initialState: () => ({ lastSlot: null }),

  evolve(state, event) {
    switch (event.type) {
      case DRILL_SLOT_FIRED:
      case DRILL_SLOT_SKIPPED:
      case DRILL_SLOTS_MISSED:
        return { lastSlot: state.lastSlot === null || event.data.slot > state.lastSlot ? event.data.slot : state.lastSlot };
    }
  },

  decide(command, state) {
    const { policyId, agentId } = command;
    if (command.kind === 'skip') {
      const { slot, vmId, restoreId, reason } = command;
      return [{ type: DRILL_SLOT_SKIPPED, data: { policyId, agentId, slot, vmId, restoreId, reason } }];
    }
    if (state.lastSlot !== command.basedOn) return [];
    const events: DrillSlotEvent[] = [];
    if (command.missed) events.push({ type: DRILL_SLOTS_MISSED, data: { policyId, agentId, ...command.missed } });
    const { fire, at, hubInstance } = command;
    if (!fire) return events;
    for (const drill of command.drills) {
      if ('skip' in drill) events.push({ type: DRILL_SLOT_SKIPPED, data: { policyId, agentId, slot: fire.slot, vmId: drill.vmId, restoreId: null, reason: drill.skip } });
      else events.push({ type: DRILL_SLOT_FIRED, data: { policyId, agentId, slot: fire.slot, ...drill, catchUp: fire.catchUp, firedAt: at, hubInstance } });
    }
    return events;
  },
};
