import { CommandHandler, ICommandHandler } from '@nestjs/cqrs';
import { AggregateRepository } from '../../eventing/aggregate-repository';
import { chainAggregate } from '../chain.aggregate';
import { chainStream } from '../chain.events';
import { AdoptRestorePointDeleteCommand } from './adopt-restore-point-delete.command';
import { ChainAppended } from './chain-appended';

@CommandHandler(AdoptRestorePointDeleteCommand)
export class AdoptRestorePointDeleteHandler implements ICommandHandler<AdoptRestorePointDeleteCommand, ChainAppended> {
  constructor(private readonly aggregates: AggregateRepository) {}

  async execute(command: AdoptRestorePointDeleteCommand): Promise<ChainAppended> {
    const { vmId, repositoryId, restorePointId, hubInstance, from } = command;
    const { position, eventIds } = await this.aggregates.execute(chainStream(vmId, repositoryId), chainAggregate, { kind: 'adoptDelete', restorePointId, hubInstance, from }, command);
    return { position, eventIds };
  }
}
