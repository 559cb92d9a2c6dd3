import { Appended } from '../../eventing/command';
import { ExecuteResult } from '../../eventing/aggregate-repository';
import { PolicySlotsState } from '../policy-slots.aggregate';
import { PolicySlotEvent } from '../policy-slots.events';

/** What a slot command recorded: no events when another hub had already done it. */
export interface SlotsResult extends Appended {
  events: PolicySlotEvent[];
  eventIds: string[];
  state: PolicySlotsState;
}

export const slotsResult = (r: ExecuteResult<PolicySlotsState, PolicySlotEvent>): SlotsResult => ({ events: r.events, eventIds: r.eventIds, state: r.state, position: r.position });
