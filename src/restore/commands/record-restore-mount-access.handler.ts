import { CommandHandler, ICommandHandler } from '@nestjs/cqrs';
import { Appended } from '../../eventing/command';
import { AggregateRepository } from '../../eventing/aggregate-repository';
import { restoreMountAggregate } from '../restore-mount.aggregate';
import { restoreMountStream } from '../restore-mount.events';
import { RecordRestoreMountAccessCommand } from './record-restore-mount-access.command';

@CommandHandler(RecordRestoreMountAccessCommand)
export class RecordRestoreMountAccessHandler implements ICommandHandler<RecordRestoreMountAccessCommand, Appended & { eventIds: string[] }> {
  constructor(private readonly aggregates: AggregateRepository) {}

  async execute(command: RecordRestoreMountAccessCommand): Promise<Appended & { eventIds: string[] }> {
    const { volume, path } = command;
    const { eventIds, position } = await this.aggregates.execute(restoreMountStream(command.mountId), restoreMountAggregate, { kind: 'recordAccess', volume, path }, command);
    return { eventIds, position };
  }
}
