import { CommandHandler, ICommandHandler } from '@nestjs/cqrs';
import { AggregateRepository } from '../../eventing/aggregate-repository';
import { Appended } from '../../eventing/command';
import { repositoryAggregate } from '../registry/repository.aggregate';
import { repositoryStream } from '../registry/repository.events';
import { RecordChunkSpaceCommand } from './record-chunk-space.command';

@CommandHandler(RecordChunkSpaceCommand)
export class RecordChunkSpaceHandler implements ICommandHandler<RecordChunkSpaceCommand, Appended> {
  constructor(private readonly aggregates: AggregateRepository) {}

  async execute(command: RecordChunkSpaceCommand): Promise<Appended> {
    const decision = { kind: 'recordChunks' as const, space: command.space, collected: command.collected };
    return { position: (await this.aggregates.execute(repositoryStream(command.repositoryId), repositoryAggregate, decision, command)).position };
  }
}
