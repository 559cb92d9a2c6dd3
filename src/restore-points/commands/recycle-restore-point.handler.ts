import { CommandHandler, ICommandHandler } from '@nestjs/cqrs';
import { AggregateRepository } from '../../eventing/aggregate-repository';
import { chainAggregate } from '../chain.aggregate';
import { chainStream } from '../chain.events';
import { ChainAppended } from './chain-appended';
import { RecycleRestorePointCommand } from './recycle-restore-point.command';

@CommandHandler(RecycleRestorePointCommand)
export class RecycleRestorePointHandler implements ICommandHandler<RecycleRestorePointCommand, ChainAppended> {
  constructor(private readonly aggregates: AggregateRepository) {}

  async execute(command: RecycleRestorePointCommand): Promise<ChainAppended> {
    const { vmId, repositoryId, restorePointId, by, reason } = command;
    const recycle = { kind: 'recycle' as const, restorePointId, recycledAt: command.recycledAt.toISOString(), purgeAfter: command.purgeAfter.toISOString(), by, reason };
    const { position, eventIds } = await this.aggregates.execute(chainStream(vmId, repositoryId), chainAggregate, recycle, command);
    return { position, eventIds };
  }
}
