import { CommandHandler, ICommandHandler } from '@nestjs/cqrs';
import { AggregateRepository } from '../../eventing/aggregate-repository';
import { chainAggregate } from '../chain.aggregate';
import { chainStream } from '../chain.events';
import { BreakChainCommand } from './break-chain.command';
import { ChainAppended } from './chain-appended';

@CommandHandler(BreakChainCommand)
export class BreakChainHandler implements ICommandHandler<BreakChainCommand, ChainAppended> {
  constructor(private readonly aggregates: AggregateRepository) {}

  async execute(command: BreakChainCommand): Promise<ChainAppended> {
    const { vmId, repositoryId, restorePointId, reason } = command;
    const { position, eventIds } = await this.aggregates.execute(chainStream(vmId, repositoryId), chainAggregate, { kind: 'breakAt', restorePointId, reason }, command);
    return { position, eventIds };
  }
}
