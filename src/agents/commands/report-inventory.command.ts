import { Appended, Command } from '../../eventing/command';
import { InventoryVm } from '../agent.events';

/** The agent's current list of VMs and their disks; an unchanged list records nothing. */
export class ReportInventoryCommand extends Command<Appended> {
  constructor(
    readonly agentId: string,
    readonly vms: InventoryVm[],
  ) {
    super();
  }
}
