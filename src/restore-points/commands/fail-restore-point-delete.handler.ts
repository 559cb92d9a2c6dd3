import { CommandHandler, ICommandHandler } from '@nestjs/cqrs';
import { AggregateRepository } from '../../eventing/aggregate-repository';
import { chainAggregate } from '../chain.aggregate';
import { chainStream } from '../chain.events';
import { ChainAppended } from './chain-appended';
import { FailRestorePointDeleteCommand } from './fail-restore-point-delete.command';

@CommandHandler(FailRestorePointDeleteCommand)
export class FailRestorePointDeleteHandler implements ICommandHandler<FailRestorePointDeleteCommand, ChainAppended> {
  constructor(private readonly aggregates: AggregateRepository) {}

  async execute(command: FailRestorePointDeleteCommand): Promise<ChainAppended> {
    const { vmId, repositoryId, restorePointId, reason, undone } = command;
    const { position, eventIds } = await this.aggregates.execute(chainStream(vmId, repositoryId), chainAggregate, { kind: 'failDelete', restorePointId, reason, undone }, command);
    return { position, eventIds };
  }
}
