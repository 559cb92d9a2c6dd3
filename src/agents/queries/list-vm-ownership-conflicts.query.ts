import { Query } from '@nestjs/cqrs';

export interface VmOwnershipConflict {
  vmId: string;
  ownerAgentId: string;
  claimantAgentId: string;
  refusedAt: Date;
}

/** Agents that reported a VM another agent owns, until an admin moves the VM to them. */
export class ListVmOwnershipConflictsQuery extends Query<VmOwnershipConflict[]> {}
