import { CommandHandler, ICommandHandler } from '@nestjs/cqrs';
import { randomUUID } from 'node:crypto';
import { AggregateRepository } from '../../eventing/aggregate-repository';
import { DomainError } from '../../eventing/domain-error';
import { AllocateNbdPortCommand, ReleaseJobPortsCommand, ReleaseNbdPortCommand } from './nbd-port.commands';
import { nbdPortPoolAggregate, PortLease } from './nbd-port-pool.aggregate';
import { NbdPortPool } from './nbd-port-pool';

export interface Allocated extends PortLease {
  position: string | null;
}

@CommandHandler(AllocateNbdPortCommand)
export class AllocateNbdPortHandler implements ICommandHandler<AllocateNbdPortCommand, Allocated> {
  constructor(
    private readonly aggregates: AggregateRepository,
    private readonly pool: NbdPortPool,
  ) {}

  async execute({ jobId, diskId }: AllocateNbdPortCommand): Promise<Allocated> {
    const leaseId = randomUUID();
    const result = await this.aggregates.execute(this.pool.stream, nbdPortPoolAggregate, { kind: 'allocate', jobId, diskId, leaseId, range: this.pool.range });
    const lease = Object.values(result.state.leases).find((l) => l.leaseId === leaseId)!;
    return { ...lease, position: result.position };
  }
}

export interface Released {
  port: number;
  jobId: string;
  leaseId: string;
  position: string | null;
}

@CommandHandler(ReleaseNbdPortCommand)
export class ReleaseNbdPortHandler implements ICommandHandler<ReleaseNbdPortCommand, Released> {
  constructor(
    private readonly aggregates: AggregateRepository,
    private readonly pool: NbdPortPool,
  ) {}

  async execute({ port, reason, leaseId }: ReleaseNbdPortCommand): Promise<Released> {
    if (!this.pool.inRange(port)) throw new DomainError('invalid', `port ${port} is outside the NBD port pool ${this.pool.range.first}-${this.pool.range.last}`);
    const result = await this.aggregates.execute(this.pool.stream, nbdPortPoolAggregate, { kind: 'release', port, leaseId, reason });
    const { jobId, leaseId: released } = result.events[0].data;
    return { port, jobId, leaseId: released, position: result.position };
  }
}

@CommandHandler(ReleaseJobPortsCommand)
export class ReleaseJobPortsHandler implements ICommandHandler<ReleaseJobPortsCommand, { ports: number[]; position: string | null }> {
  constructor(
    private readonly aggregates: AggregateRepository,
    private readonly pool: NbdPortPool,
  ) {}

  async execute({ jobId, reason }: ReleaseJobPortsCommand) {
    const result = await this.aggregates.execute(this.pool.stream, nbdPortPoolAggregate, { kind: 'releaseJob', jobId, reason });
    return { ports: result.events.map((e) => e.data.port), position: result.position };
  }
}
