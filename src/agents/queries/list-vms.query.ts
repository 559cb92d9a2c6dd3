import { Query } from '@nestjs/cqrs';
import { InventoryDisk, PowerState } from '../agent.events';
import type { DiskLeftOut } from '../../wire/backup-protocol';

export interface VmSummary {
  vmId: string;
  name: string;
  agentId: string;
  agentConnected: boolean;
  /** null where the source does not report it. */
  powerState: PowerState | null;
  disks: InventoryDisk[];
  /** Disks holding data the agent cannot read: no backup of the VM holds them. */
  disksLeftOut: DiskLeftOut[];
  reportedAt: Date;
}

/** Every VM some agent reports, by id. */
export class ListVmsQuery extends Query<VmSummary[]> {}
