import { Command } from '../../eventing/command';
import { ExecuteResult } from '../../eventing/aggregate-repository';
import { DrillSlotsCommand, DrillSlotsState } from './drill-slots.aggregate';
import { DrillSlotEvent } from './drill-slots.events';

export type DrillSlotsResult = ExecuteResult<DrillSlotsState, DrillSlotEvent>;

/** A drill slot taken (fire) by whichever hub appends first, or one fired drill recorded as refused (skip). */
export class DecideDrillSlotCommand extends Command<DrillSlotsResult> {
  constructor(readonly decision: DrillSlotsCommand) {
    super();
  }
}
