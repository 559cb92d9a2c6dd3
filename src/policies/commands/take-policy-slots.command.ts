import { Command } from '../../eventing/command';
import { PolicySlotsCommand } from '../policy-slots.aggregate';
import { SlotsResult } from './slots-result';

/** The calendar's due slots (fire) or a run now (run), taken for the policy's VMs by whichever hub appends first. */
export class TakePolicySlotsCommand extends Command<SlotsResult> {
  constructor(readonly decision: Extract<PolicySlotsCommand, { kind: 'fire' | 'run' }>) {
    super();
  }
}
