import { CommandHandler, ICommandHandler } from '@nestjs/cqrs';
import { AggregateRepository } from '../../../eventing/aggregate-repository';
import { Appended } from '../../../eventing/command';
import { qemuNbdProcessAggregate } from '../qemu-nbd-process.aggregate';
import { qemuNbdStream } from '../qemu-nbd.events';
import { RecordQemuNbdExitedCommand } from './record-qemu-nbd-exited.command';

@CommandHandler(RecordQemuNbdExitedCommand)
export class RecordQemuNbdExitedHandler implements ICommandHandler<RecordQemuNbdExitedCommand, Appended & { eventIds: string[] }> {
  constructor(private readonly aggregates: AggregateRepository) {}

  async execute(command: RecordQemuNbdExitedCommand): Promise<Appended & { eventIds: string[] }> {
    const { position, eventIds } = await this.aggregates.execute(qemuNbdStream(command.leaseId), qemuNbdProcessAggregate, { kind: 'recordExit', ...command.exit }, command);
    return { position, eventIds };
  }
}
