import { CommandHandler, ICommandHandler } from '@nestjs/cqrs';
import { AggregateRepository } from '../../../eventing/aggregate-repository';
import { qemuNbdProcessAggregate, servesPort } from '../../exports/qemu-nbd-process.aggregate';
import { qemuNbdStream } from '../../exports/qemu-nbd.events';
import { nbdPortPoolAggregate } from '../nbd-port-pool.aggregate';
import { NbdPortPool } from '../nbd-port-pool';
import { Released, ReleaseNbdPortCommand } from './release-nbd-port.command';

@CommandHandler(ReleaseNbdPortCommand)
export class ReleaseNbdPortHandler implements ICommandHandler<ReleaseNbdPortCommand, Released> {
  constructor(
    private readonly aggregates: AggregateRepository,
    private readonly pool: NbdPortPool,
  ) {}

  async execute(command: ReleaseNbdPortCommand): Promise<Released> {
    const { port, reason, leaseId } = command;
    // The export of a lease is known to every hub on the database through its own stream, so a
    // port served by another hub process is refused as surely as one served by this one.
    const lease = (await this.pool.state()).leases[port];
    const exporting = lease && servesPort((await this.aggregates.load(qemuNbdStream(lease.leaseId), qemuNbdProcessAggregate)).state) ? [lease.leaseId] : [];
    const decision = { kind: 'release', port, leaseId, reason, range: this.pool.range, exporting } as const;
    const result = await this.aggregates.execute(this.pool.stream, nbdPortPoolAggregate, decision, command);
    const released = result.events[0].data;
    return { port, jobId: released.jobId, leaseId: released.leaseId, position: result.position };
  }
}
