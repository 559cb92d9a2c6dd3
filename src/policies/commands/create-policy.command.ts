import { Command } from '../../eventing/command';
import { PolicyDefinition } from '../policy.events';
import { PolicyResult } from './policy-result';

export class CreatePolicyCommand extends Command<PolicyResult> {
  constructor(readonly definition: PolicyDefinition) {
    super();
  }
}
