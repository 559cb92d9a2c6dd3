import { Injectable } from '@nestjs/common';
import { AggregateRepository } from '../../eventing/aggregate-repository';
import { qemuNbdProcessAggregate, QemuNbdProcessState } from './qemu-nbd-process.aggregate';
import { qemuNbdStream } from './qemu-nbd.events';

/** The recorded life of a lease's qemu-nbd, from its own stream: what every hub process on the database agrees on. */
@Injectable()
export class QemuNbdProcessStates {
  constructor(private readonly aggregates: AggregateRepository) {}

  async of(leaseId: string): Promise<QemuNbdProcessState> {
    return (await this.aggregates.load(qemuNbdStream(leaseId), qemuNbdProcessAggregate)).state;
  }
}
