import { CommandHandler, ICommandHandler } from '@nestjs/cqrs';
import { AggregateRepository } from '../../eventing/aggregate-repository';
import { Appended } from '../../eventing/command';
import { agentAggregate } from '../agent.aggregate';
import { agentStream } from '../agent.events';
import { RecordAgentConnectedCommand } from './record-agent-connected.command';

@CommandHandler(RecordAgentConnectedCommand)
export class RecordAgentConnectedHandler implements ICommandHandler<RecordAgentConnectedCommand, Appended> {
  constructor(private readonly aggregates: AggregateRepository) {}

  async execute(command: RecordAgentConnectedCommand): Promise<Appended> {
    const { position } = await this.aggregates.execute(agentStream(command.agentId), agentAggregate, { kind: 'connect', remoteAddress: command.remoteAddress, hubInstance: command.hubInstance }, command);
    return { position };
  }
}
