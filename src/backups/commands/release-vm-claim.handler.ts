import { CommandHandler, ICommandHandler } from '@nestjs/cqrs';
import { AggregateRepository } from '../../eventing/aggregate-repository';
import { vmClaimAggregate } from '../vm-claim.aggregate';
import { vmClaimStream } from '../vm-claim.events';
import { ClaimReleased, ReleaseVmClaimCommand } from './release-vm-claim.command';

@CommandHandler(ReleaseVmClaimCommand)
export class ReleaseVmClaimHandler implements ICommandHandler<ReleaseVmClaimCommand, ClaimReleased> {
  constructor(private readonly aggregates: AggregateRepository) {}

  async execute(command: ReleaseVmClaimCommand): Promise<ClaimReleased> {
    const { vmId, jobId, reason } = command;
    const { position, eventIds } = await this.aggregates.execute(vmClaimStream(vmId), vmClaimAggregate, { kind: 'release', vmId, jobId, reason }, command);
    return { position, eventIds };
  }
}
