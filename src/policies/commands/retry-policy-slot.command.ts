import { Command } from '../../eventing/command';
import { PolicySlotsCommand } from '../policy-slots.aggregate';
import { SlotsResult } from './slots-result';

/** The request of a taken slot was never recorded (its hub died): this hub requests again, if no other hub did. */
export class RetryPolicySlotCommand extends Command<SlotsResult> {
  constructor(readonly decision: Extract<PolicySlotsCommand, { kind: 'retry' }>) {
    super();
  }
}
