import { CommandHandler, ICommandHandler } from '@nestjs/cqrs';
import { AggregateRepository } from '../../../eventing/aggregate-repository';
import { Appended } from '../../../eventing/command';
import { qemuNbdProcessAggregate } from '../qemu-nbd-process.aggregate';
import { qemuNbdStream } from '../qemu-nbd.events';
import { RequestQemuNbdStartCommand } from './request-qemu-nbd-start.command';

@CommandHandler(RequestQemuNbdStartCommand)
export class RequestQemuNbdStartHandler implements ICommandHandler<RequestQemuNbdStartCommand, Appended & { eventIds: string[] }> {
  constructor(private readonly aggregates: AggregateRepository) {}

  async execute(command: RequestQemuNbdStartCommand): Promise<Appended & { eventIds: string[] }> {
    const { position, eventIds } = await this.aggregates.execute(qemuNbdStream(command.leaseId), qemuNbdProcessAggregate, { kind: 'requestStart', target: command.target }, command);
    return { position, eventIds };
  }
}
