import { CommandHandler, ICommandHandler, QueryBus } from '@nestjs/cqrs';
import { AggregateRepository } from '../../eventing/aggregate-repository';
import { DomainError } from '../../eventing/domain-error';
import { agentAggregate } from '../agent.aggregate';
import { AgentStates } from '../agent-states';
import { agentStream } from '../agent.events';
import { GetVmQuery } from '../queries/get-vm.query';
import { vmOwnershipAggregate } from '../vm-ownership.aggregate';
import { vmOwnerStream } from '../vm-ownership.events';
import { InventoryRecorded, ReportInventoryCommand } from './report-inventory.command';

/**
 * Each reported VM is claimed first: the agent's inventory keeps only the VMs it owns, so a second agent that
 * reports another's `vmId` (a compromised host, a cloned template's UUID) takes nothing over.
 */
@CommandHandler(ReportInventoryCommand)
export class ReportInventoryHandler implements ICommandHandler<ReportInventoryCommand, InventoryRecorded> {
  constructor(
    private readonly aggregates: AggregateRepository,
    private readonly queries: QueryBus,
    private readonly agents: AgentStates,
  ) {}

  async execute(command: ReportInventoryCommand): Promise<InventoryRecorded> {
    const { agentId } = command;
    await this.agents.of(agentId); // nothing is claimed for an agent that does not exist
    const refused: string[] = [];
    let position: string | null = null;
    for (const vm of command.vms) {
      const stream = vmOwnerStream(vm.vmId);
      const { state } = await this.aggregates.load(stream, vmOwnershipAggregate);
      const incumbent = state.owner === null ? await this.reportedBy(vm.vmId) : null;
      const claimed = await this.aggregates.execute(stream, vmOwnershipAggregate, { kind: 'claim', vmId: vm.vmId, agentId, incumbent }, command);
      position = claimed.position ?? position;
      if (claimed.state.owner !== agentId) refused.push(vm.vmId);
    }
    const vms = command.vms.filter((vm) => !refused.includes(vm.vmId));
    const reported = await this.aggregates.execute(agentStream(agentId), agentAggregate, { kind: 'reportInventory', vms }, command);
    return { position: reported.position ?? position, refused };
  }

  /** The agent that reported the VM before its ownership was recorded, if any. */
  private async reportedBy(vmId: string): Promise<string | null> {
    try {
      return (await this.queries.execute(new GetVmQuery(vmId))).agentId;
    } catch (e) {
      if (e instanceof DomainError && e.kind === 'not_found') return null;
      throw e;
    }
  }
}
