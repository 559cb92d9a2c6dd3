import { PolicyDefinition, PolicyDrill } from '../policy.events';

/** A policy as GET answers it: the definition, when it was made and changed, and the newest calendar slot handled. */
export interface PolicySummary extends Omit<PolicyDefinition, 'drill'> {
  drill: PolicyDrill | null;
  policyId: string;
  createdAt: string;
  updatedAt: string;
  lastSlot: string | null;
}
