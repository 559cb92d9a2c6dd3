import { CommandHandler, ICommandHandler } from '@nestjs/cqrs';
import { Appended } from '../../eventing/command';
import { AggregateRepository } from '../../eventing/aggregate-repository';
import { restoreMountAggregate } from '../restore-mount.aggregate';
import { restoreMountStream } from '../restore-mount.events';
import { MarkRestoreMountFailedCommand } from './mark-restore-mount-failed.command';

@CommandHandler(MarkRestoreMountFailedCommand)
export class MarkRestoreMountFailedHandler implements ICommandHandler<MarkRestoreMountFailedCommand, Appended & { eventIds: string[] }> {
  constructor(private readonly aggregates: AggregateRepository) {}

  async execute(command: MarkRestoreMountFailedCommand): Promise<Appended & { eventIds: string[] }> {
    const { eventIds, position } = await this.aggregates.execute(restoreMountStream(command.mountId), restoreMountAggregate, { kind: 'recordFailed', reason: command.reason }, command);
    return { eventIds, position };
  }
}
