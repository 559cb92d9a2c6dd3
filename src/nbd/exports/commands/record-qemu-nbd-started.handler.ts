import { CommandHandler, ICommandHandler } from '@nestjs/cqrs';
import { AggregateRepository } from '../../../eventing/aggregate-repository';
import { Appended } from '../../../eventing/command';
import { qemuNbdProcessAggregate } from '../qemu-nbd-process.aggregate';
import { qemuNbdStream } from '../qemu-nbd.events';
import { RecordQemuNbdStartedCommand } from './record-qemu-nbd-started.command';

@CommandHandler(RecordQemuNbdStartedCommand)
export class RecordQemuNbdStartedHandler implements ICommandHandler<RecordQemuNbdStartedCommand, Appended & { eventIds: string[] }> {
  constructor(private readonly aggregates: AggregateRepository) {}

  async execute(command: RecordQemuNbdStartedCommand): Promise<Appended & { eventIds: string[] }> {
    const { position, eventIds } = await this.aggregates.execute(qemuNbdStream(command.leaseId), qemuNbdProcessAggregate, { kind: 'recordStarted', pid: command.pid, args: command.args }, command);
    return { position, eventIds };
  }
}
