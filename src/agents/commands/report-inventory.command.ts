import { Appended, Command } from '../../eventing/command';
import { InventoryVm } from '../agent.events';

/** `refused`: the VMs of the report that belong to another agent; they are left out of the agent's inventory. */
export interface InventoryRecorded extends Appended {
  refused: string[];
}

/** The agent's current list of VMs and their disks; an unchanged list records nothing. */
export class ReportInventoryCommand extends Command<InventoryRecorded> {
  constructor(
    readonly agentId: string,
    readonly vms: InventoryVm[],
  ) {
    super();
  }
}
