import { CommandHandler, ICommandHandler } from '@nestjs/cqrs';
import { AggregateRepository } from '../../eventing/aggregate-repository';
import { chainAggregate } from '../chain.aggregate';
import { chainStream } from '../chain.events';
import { AddRestorePointCommand } from './add-restore-point.command';
import { ChainAppended } from './chain-appended';

@CommandHandler(AddRestorePointCommand)
export class AddRestorePointHandler implements ICommandHandler<AddRestorePointCommand, ChainAppended> {
  constructor(private readonly aggregates: AggregateRepository) {}

  async execute(command: AddRestorePointCommand): Promise<ChainAppended> {
    const { point } = command;
    const { position, eventIds } = await this.aggregates.execute(chainStream(point.vmId, point.repositoryId), chainAggregate, { kind: 'add', point }, command);
    return { position, eventIds };
  }
}
