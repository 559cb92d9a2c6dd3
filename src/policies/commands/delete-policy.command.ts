import { Command } from '../../eventing/command';
import { PolicyResult } from './policy-result';

/** The policy stops; its restore points stay. */
export class DeletePolicyCommand extends Command<PolicyResult> {
  constructor(readonly policyId: string) {
    super();
  }
}
