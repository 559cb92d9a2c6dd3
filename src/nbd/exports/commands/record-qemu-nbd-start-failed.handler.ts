import { CommandHandler, ICommandHandler } from '@nestjs/cqrs';
import { AggregateRepository } from '../../../eventing/aggregate-repository';
import { Appended } from '../../../eventing/command';
import { qemuNbdProcessAggregate } from '../qemu-nbd-process.aggregate';
import { qemuNbdStream } from '../qemu-nbd.events';
import { RecordQemuNbdStartFailedCommand } from './record-qemu-nbd-start-failed.command';

@CommandHandler(RecordQemuNbdStartFailedCommand)
export class RecordQemuNbdStartFailedHandler implements ICommandHandler<RecordQemuNbdStartFailedCommand, Appended & { eventIds: string[] }> {
  constructor(private readonly aggregates: AggregateRepository) {}

  async execute(command: RecordQemuNbdStartFailedCommand): Promise<Appended & { eventIds: string[] }> {
    const { position, eventIds } = await this.aggregates.execute(qemuNbdStream(command.leaseId), qemuNbdProcessAggregate, { kind: 'recordStartFailed', reason: command.reason }, command);
    return { position, eventIds };
  }
}
