import { CommandHandler, ICommandHandler } from '@nestjs/cqrs';
import { AggregateRepository } from '../../eventing/aggregate-repository';
import { chainAggregate } from '../chain.aggregate';
import { chainStream } from '../chain.events';
import { ChainAppended } from './chain-appended';
import { StartRestorePointDeleteCommand } from './start-restore-point-delete.command';

@CommandHandler(StartRestorePointDeleteCommand)
export class StartRestorePointDeleteHandler implements ICommandHandler<StartRestorePointDeleteCommand, ChainAppended> {
  constructor(private readonly aggregates: AggregateRepository) {}

  async execute(command: StartRestorePointDeleteCommand): Promise<ChainAppended> {
    const { vmId, repositoryId, restorePointId, dueBy, hubInstance } = command;
    const { position, eventIds } = await this.aggregates.execute(chainStream(vmId, repositoryId), chainAggregate, { kind: 'startDelete', restorePointId, ...(dueBy !== undefined ? { dueBy } : {}), ...(hubInstance !== undefined ? { hubInstance } : {}) }, command);
    return { position, eventIds };
  }
}
