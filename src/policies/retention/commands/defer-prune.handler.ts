import { CommandHandler, ICommandHandler } from '@nestjs/cqrs';
import { AggregateRepository } from '../../../eventing/aggregate-repository';
import { Appended } from '../../../eventing/command';
import { retentionAggregate } from '../retention.aggregate';
import { retentionStream } from '../retention.events';
import { DeferPruneCommand } from './defer-prune.command';

@CommandHandler(DeferPruneCommand)
export class DeferPruneHandler implements ICommandHandler<DeferPruneCommand, Appended> {
  constructor(private readonly aggregates: AggregateRepository) {}

  async execute(command: DeferPruneCommand): Promise<Appended> {
    const { policyId, vmId, repositoryId, restorePointId, reason } = command;
    const { position } = await this.aggregates.execute(retentionStream(policyId), retentionAggregate, { kind: 'defer', policyId, vmId, repositoryId, restorePointId, reason }, command);
    return { position };
  }
}
