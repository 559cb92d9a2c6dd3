import { CommandHandler, ICommandHandler } from '@nestjs/cqrs';
import { AggregateRepository } from '../../eventing/aggregate-repository';
import { Appended } from '../../eventing/command';
import { agentAggregate } from '../agent.aggregate';
import { agentStream } from '../agent.events';
import { ReportInventoryCommand } from './report-inventory.command';

@CommandHandler(ReportInventoryCommand)
export class ReportInventoryHandler implements ICommandHandler<ReportInventoryCommand, Appended> {
  constructor(private readonly aggregates: AggregateRepository) {}

  async execute(command: ReportInventoryCommand): Promise<Appended> {
    const { position } = await this.aggregates.execute(agentStream(command.agentId), agentAggregate, { kind: 'reportInventory', vms: command.vms }, command);
    return { position };
  }
}
