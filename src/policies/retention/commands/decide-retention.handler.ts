import { CommandHandler, ICommandHandler } from '@nestjs/cqrs';
import { AggregateRepository } from '../../../eventing/aggregate-repository';
import { retentionAggregate } from '../retention.aggregate';
import { retentionStream } from '../retention.events';
import { DecideRetentionCommand, RetentionRecorded } from './decide-retention.command';

@CommandHandler(DecideRetentionCommand)
export class DecideRetentionHandler implements ICommandHandler<DecideRetentionCommand, RetentionRecorded> {
  constructor(private readonly aggregates: AggregateRepository) {}

  async execute(command: DecideRetentionCommand): Promise<RetentionRecorded> {
    const { policyId, vmId, repositoryId, trigger, rules, timeZone, decidedAt, marks } = command;
    const decision = { kind: 'decide' as const, policyId, vmId, repositoryId, trigger, rules, timeZone, decidedAt, marks };
    const { position, eventIds } = await this.aggregates.execute(retentionStream(policyId), retentionAggregate, decision, command);
    return { position, eventIds, decided: eventIds.length > 0 };
  }
}
