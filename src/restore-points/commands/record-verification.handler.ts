import { CommandHandler, ICommandHandler } from '@nestjs/cqrs';
import { AggregateRepository } from '../../eventing/aggregate-repository';
import { chainAggregate } from '../chain.aggregate';
import { chainStream } from '../chain.events';
import { ChainAppended } from './chain-appended';
import { RecordVerificationCommand } from './record-verification.command';

@CommandHandler(RecordVerificationCommand)
export class RecordVerificationHandler implements ICommandHandler<RecordVerificationCommand, ChainAppended> {
  constructor(private readonly aggregates: AggregateRepository) {}

  async execute(command: RecordVerificationCommand): Promise<ChainAppended> {
    const { vmId, repositoryId, restorePointId, problems, warnings, verifiedAt, digests } = command;
    const decision = { kind: 'recordVerification' as const, restorePointId, ok: problems.length === 0, problems, warnings, verifiedAt, digests };
    const { position, eventIds } = await this.aggregates.execute(chainStream(vmId, repositoryId), chainAggregate, decision, command);
    return { position, eventIds };
  }
}
