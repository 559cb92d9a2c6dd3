import { CommandHandler, ICommandHandler } from '@nestjs/cqrs';
import { AggregateRepository } from '../../eventing/aggregate-repository';
import { Appended } from '../../eventing/command';
import { agentAggregate } from '../agent.aggregate';
import { agentStream } from '../agent.events';
import { RecordAgentDisconnectedCommand } from './record-agent-disconnected.command';

@CommandHandler(RecordAgentDisconnectedCommand)
export class RecordAgentDisconnectedHandler implements ICommandHandler<RecordAgentDisconnectedCommand, Appended> {
  constructor(private readonly aggregates: AggregateRepository) {}

  async execute(command: RecordAgentDisconnectedCommand): Promise<Appended> {
    const { position } = await this.aggregates.execute(agentStream(command.agentId), agentAggregate, { kind: 'disconnect', reason: command.reason, ...(command.via ? { via: command.via } : {}) }, command);
    return { position };
  }
}
