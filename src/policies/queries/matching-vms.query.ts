import { Query } from '@nestjs/cqrs';
import { PolicyVmSelector } from '../policy.events';

export interface MatchingVm {
  vmId: string;
  name: string;
  agentId: string;
}

/** The VMs the agents report now that a policy's selector picks (`selects`, as the scheduler picks them), by id; an empty selector picks none. */
export class MatchingVmsQuery extends Query<MatchingVm[]> {
  constructor(readonly selector: PolicyVmSelector) {
    super();
  }
}
