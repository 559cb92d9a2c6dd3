import { CommandHandler, ICommandHandler } from '@nestjs/cqrs';
import { AggregateRepository } from '../../eventing/aggregate-repository';
import { chainAggregate } from '../chain.aggregate';
import { chainStream } from '../chain.events';
import { ChainAppended } from './chain-appended';
import { RecordCorruptionCommand } from './record-corruption.command';

@CommandHandler(RecordCorruptionCommand)
export class RecordCorruptionHandler implements ICommandHandler<RecordCorruptionCommand, ChainAppended> {
  constructor(private readonly aggregates: AggregateRepository) {}

  async execute(command: RecordCorruptionCommand): Promise<ChainAppended> {
    const { vmId, repositoryId, restorePointId, damage, readsThrough } = command;
    const decision = { kind: 'recordCorruption' as const, restorePointId, ...damage, readsThrough };
    const { position, eventIds } = await this.aggregates.execute(chainStream(vmId, repositoryId), chainAggregate, decision, command);
    return { position, eventIds };
  }
}
