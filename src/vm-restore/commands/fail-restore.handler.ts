import { CommandHandler, ICommandHandler } from '@nestjs/cqrs';
import { AggregateRepository } from '../../eventing/aggregate-repository';
import { restoreAggregate } from '../restore.aggregate';
import { restoreStream } from '../restore.events';
import { FailRestoreCommand } from './fail-restore.command';
import { RestoreResult, restoreResult } from './restore-result';

@CommandHandler(FailRestoreCommand)
export class FailRestoreHandler implements ICommandHandler<FailRestoreCommand, RestoreResult> {
  constructor(private readonly aggregates: AggregateRepository) {}

  async execute(command: FailRestoreCommand): Promise<RestoreResult> {
    return restoreResult(await this.aggregates.execute(restoreStream(command.restoreId), restoreAggregate, { kind: 'fail', reason: command.reason, damaged: command.damaged }, command));
  }
}
