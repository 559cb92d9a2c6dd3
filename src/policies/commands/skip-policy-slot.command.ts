import { Command } from '../../eventing/command';
import { PolicySlotsCommand } from '../policy-slots.aggregate';
import { SlotsResult } from './slots-result';

/** A taken slot made no backup of its VM, and why. */
export class SkipPolicySlotCommand extends Command<SlotsResult> {
  constructor(readonly decision: Extract<PolicySlotsCommand, { kind: 'skip' }>) {
    super();
  }
}
