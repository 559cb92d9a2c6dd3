import { Command } from '../../eventing/command';
import { PolicyDefinition } from '../policy.events';
import { PolicyResult } from './policy-result';

/** PUT: the whole new definition. */
export class UpdatePolicyCommand extends Command<PolicyResult> {
  constructor(
    readonly policyId: string,
    readonly definition: PolicyDefinition,
  ) {
    super();
  }
}
