import { Query } from '@nestjs/cqrs';
import { PolicySummary } from './policy-summary';

/** Every policy not deleted, by name. */
export class ListPoliciesQuery extends Query<PolicySummary[]> {}
