import { CommandHandler, ICommandHandler } from '@nestjs/cqrs';
import { AggregateRepository } from '../../../eventing/aggregate-repository';
import { Appended } from '../../../eventing/command';
import { qemuNbdProcessAggregate } from '../qemu-nbd-process.aggregate';
import { qemuNbdStream } from '../qemu-nbd.events';
import { RecordQemuNbdStoppedCommand } from './record-qemu-nbd-stopped.command';

@CommandHandler(RecordQemuNbdStoppedCommand)
export class RecordQemuNbdStoppedHandler implements ICommandHandler<RecordQemuNbdStoppedCommand, Appended & { eventIds: string[] }> {
  constructor(private readonly aggregates: AggregateRepository) {}

  async execute(command: RecordQemuNbdStoppedCommand): Promise<Appended & { eventIds: string[] }> {
    const { position, eventIds } = await this.aggregates.execute(qemuNbdStream(command.leaseId), qemuNbdProcessAggregate, { kind: 'recordStopped' }, command);
    return { position, eventIds };
  }
}
