import { Query } from '@nestjs/cqrs';
import { PolicySummary } from './policy-summary';

/** One policy; not found once deleted. */
export class GetPolicyQuery extends Query<PolicySummary> {
  constructor(readonly policyId: string) {
    super();
  }
}
