import { CommandHandler, ICommandHandler } from '@nestjs/cqrs';
import { Appended } from '../../eventing/command';
import { AggregateRepository } from '../../eventing/aggregate-repository';
import { restoreMountAggregate } from '../restore-mount.aggregate';
import { restoreMountStream } from '../restore-mount.events';
import { MarkRestoreMountReadyCommand } from './mark-restore-mount-ready.command';

@CommandHandler(MarkRestoreMountReadyCommand)
export class MarkRestoreMountReadyHandler implements ICommandHandler<MarkRestoreMountReadyCommand, Appended & { eventIds: string[] }> {
  constructor(private readonly aggregates: AggregateRepository) {}

  async execute(command: MarkRestoreMountReadyCommand): Promise<Appended & { eventIds: string[] }> {
    const { partitionTable, diskSize, volumes } = command;
    const { eventIds, position } = await this.aggregates.execute(restoreMountStream(command.mountId), restoreMountAggregate, { kind: 'recordReady', partitionTable, diskSize, volumes }, command);
    return { eventIds, position };
  }
}
