import { CommandHandler, ICommandHandler } from '@nestjs/cqrs';
import { randomUUID } from 'node:crypto';
import { AggregateRepository } from '../../../eventing/aggregate-repository';
import { leaseById, nbdPortPoolAggregate } from '../nbd-port-pool.aggregate';
import { NbdPortPool } from '../nbd-port-pool';
import { Allocated, AllocateNbdPortCommand } from './allocate-nbd-port.command';

@CommandHandler(AllocateNbdPortCommand)
export class AllocateNbdPortHandler implements ICommandHandler<AllocateNbdPortCommand, Allocated> {
  constructor(
    private readonly aggregates: AggregateRepository,
    private readonly pool: NbdPortPool,
  ) {}

  async execute(command: AllocateNbdPortCommand): Promise<Allocated> {
    const leaseId = randomUUID();
    const decision = { kind: 'allocate', jobId: command.jobId, diskId: command.diskId, leaseId, range: this.pool.range } as const;
    const result = await this.aggregates.execute(this.pool.stream, nbdPortPoolAggregate, decision, command);
    const { port, jobId, diskId } = leaseById(result.state, leaseId)!;
    return { port, leaseId, jobId, diskId, position: result.position, eventIds: result.eventIds };
  }
}
