import { CommandHandler, ICommandHandler } from '@nestjs/cqrs';
import { AggregateRepository } from '../../../eventing/aggregate-repository';
import { nbdPortPoolAggregate } from '../nbd-port-pool.aggregate';
import { NbdPortPool } from '../nbd-port-pool';
import { JobPortsReleased, ReleaseJobPortsCommand } from './release-job-ports.command';

@CommandHandler(ReleaseJobPortsCommand)
export class ReleaseJobPortsHandler implements ICommandHandler<ReleaseJobPortsCommand, JobPortsReleased> {
  constructor(
    private readonly aggregates: AggregateRepository,
    private readonly pool: NbdPortPool,
  ) {}

  async execute(command: ReleaseJobPortsCommand): Promise<JobPortsReleased> {
    const decision = { kind: 'releaseJob', jobId: command.jobId, reason: command.reason } as const;
    const result = await this.aggregates.execute(this.pool.stream, nbdPortPoolAggregate, decision, command);
    return { ports: result.events.map((e) => e.data.port), position: result.position };
  }
}
