import { Query } from '@nestjs/cqrs';
import { InventoryDisk } from '../agent.events';

export interface VmRecord {
  vmId: string;
  agentId: string;
  name: string;
  disks: InventoryDisk[];
  reportedAt: Date;
}

/** One VM as its agent last reported it; not found when no agent reports it. */
export class GetVmQuery extends Query<VmRecord> {
  constructor(readonly vmId: string) {
    super();
  }
}
