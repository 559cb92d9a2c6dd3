import { Query } from '@nestjs/cqrs';
import { InventoryDisk, PowerState } from '../agent.events';

export interface VmSummary {
  vmId: string;
  name: string;
  agentId: string;
  agentConnected: boolean;
  /** null where the source does not report it. */
  powerState: PowerState | null;
  disks: InventoryDisk[];
  reportedAt: Date;
}

/** Every VM some agent reports, by id. */
export class ListVmsQuery extends Query<VmSummary[]> {}
