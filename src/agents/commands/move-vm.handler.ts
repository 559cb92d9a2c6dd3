import { CommandHandler, ICommandHandler } from '@nestjs/cqrs';
import { AggregateRepository } from '../../eventing/aggregate-repository';
import { Appended } from '../../eventing/command';
import { AgentStates } from '../agent-states';
import { vmOwnershipAggregate } from '../vm-ownership.aggregate';
import { vmOwnerStream } from '../vm-ownership.events';
import { MoveVmCommand } from './move-vm.command';

@CommandHandler(MoveVmCommand)
export class MoveVmHandler implements ICommandHandler<MoveVmCommand, Appended> {
  constructor(
    private readonly aggregates: AggregateRepository,
    private readonly agents: AgentStates,
  ) {}

  async execute(command: MoveVmCommand): Promise<Appended> {
    await this.agents.of(command.toAgentId);
    const { position } = await this.aggregates.execute(vmOwnerStream(command.vmId), vmOwnershipAggregate, { kind: 'move', vmId: command.vmId, toAgentId: command.toAgentId, reason: command.reason }, command);
    return { position };
  }
}
