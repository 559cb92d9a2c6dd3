import { CommandHandler, ICommandHandler } from '@nestjs/cqrs';
import { AggregateRepository } from '../../eventing/aggregate-repository';
import { restoreAggregate } from '../restore.aggregate';
import { restoreStream } from '../restore.events';
import { CompleteRestoreCommand } from './complete-restore.command';
import { RestoreResult, restoreResult } from './restore-result';

@CommandHandler(CompleteRestoreCommand)
export class CompleteRestoreHandler implements ICommandHandler<CompleteRestoreCommand, RestoreResult> {
  constructor(private readonly aggregates: AggregateRepository) {}

  async execute(command: CompleteRestoreCommand): Promise<RestoreResult> {
    return restoreResult(await this.aggregates.execute(restoreStream(command.restoreId), restoreAggregate, { kind: 'complete', domain: command.domain, durationMs: command.durationMs }, command));
  }
}
