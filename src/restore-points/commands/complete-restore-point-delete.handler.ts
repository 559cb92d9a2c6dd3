import { CommandHandler, ICommandHandler } from '@nestjs/cqrs';
import { AggregateRepository } from '../../eventing/aggregate-repository';
import { chainAggregate } from '../chain.aggregate';
import { chainStream } from '../chain.events';
import { ChainAppended } from './chain-appended';
import { CompleteRestorePointDeleteCommand } from './complete-restore-point-delete.command';

@CommandHandler(CompleteRestorePointDeleteCommand)
export class CompleteRestorePointDeleteHandler implements ICommandHandler<CompleteRestorePointDeleteCommand, ChainAppended> {
  constructor(private readonly aggregates: AggregateRepository) {}

  async execute(command: CompleteRestorePointDeleteCommand): Promise<ChainAppended> {
    const { vmId, repositoryId, restorePointId, childDisks } = command;
    const { position, eventIds } = await this.aggregates.execute(chainStream(vmId, repositoryId), chainAggregate, { kind: 'completeDelete', restorePointId, childDisks }, command);
    return { position, eventIds };
  }
}
