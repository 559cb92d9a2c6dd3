import { Query } from '@nestjs/cqrs';
import { InventoryDisk } from '../agent.events';

export interface VmSummary {
  vmId: string;
  name: string;
  agentId: string;
  agentConnected: boolean;
  disks: InventoryDisk[];
  reportedAt: Date;
}

/** Every VM some agent reports, by id. */
export class ListVmsQuery extends Query<VmSummary[]> {}
