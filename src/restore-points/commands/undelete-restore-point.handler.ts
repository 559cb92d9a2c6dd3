import { CommandHandler, ICommandHandler } from '@nestjs/cqrs';
import { AggregateRepository } from '../../eventing/aggregate-repository';
import { chainAggregate } from '../chain.aggregate';
import { chainStream } from '../chain.events';
import { ChainAppended } from './chain-appended';
import { UndeleteRestorePointCommand } from './undelete-restore-point.command';

@CommandHandler(UndeleteRestorePointCommand)
export class UndeleteRestorePointHandler implements ICommandHandler<UndeleteRestorePointCommand, ChainAppended> {
  constructor(private readonly aggregates: AggregateRepository) {}

  async execute(command: UndeleteRestorePointCommand): Promise<ChainAppended> {
    const { vmId, repositoryId, restorePointId, by } = command;
    const { position, eventIds } = await this.aggregates.execute(chainStream(vmId, repositoryId), chainAggregate, { kind: 'undelete', restorePointId, by }, command);
    return { position, eventIds };
  }
}
