import { CommandHandler, ICommandHandler } from '@nestjs/cqrs';
import { AggregateRepository } from '../../eventing/aggregate-repository';
import { chainAggregate } from '../chain.aggregate';
import { chainStream } from '../chain.events';
import { ChainAppended } from './chain-appended';
import { SyncRestorePointCommand } from './sync-restore-point.command';

@CommandHandler(SyncRestorePointCommand)
export class SyncRestorePointHandler implements ICommandHandler<SyncRestorePointCommand, ChainAppended> {
  constructor(private readonly aggregates: AggregateRepository) {}

  async execute(command: SyncRestorePointCommand): Promise<ChainAppended> {
    const { point, synced } = command;
    const { position, eventIds } = await this.aggregates.execute(chainStream(point.vmId, point.repositoryId), chainAggregate, { kind: 'sync', point, synced }, command);
    return { position, eventIds };
  }
}
