import { CommandHandler, ICommandHandler } from '@nestjs/cqrs';
import { AggregateRepository } from '../../eventing/aggregate-repository';
import { restoreAggregate } from '../restore.aggregate';
import { restoreStream } from '../restore.events';
import { StartRestoreCommand } from './start-restore.command';
import { RestoreResult, restoreResult } from './restore-result';

@CommandHandler(StartRestoreCommand)
export class StartRestoreHandler implements ICommandHandler<StartRestoreCommand, RestoreResult> {
  constructor(private readonly aggregates: AggregateRepository) {}

  async execute(command: StartRestoreCommand): Promise<RestoreResult> {
    return restoreResult(await this.aggregates.execute(restoreStream(command.restoreId), restoreAggregate, { kind: 'start', hubInstance: command.hubInstance, exports: command.exports }, command));
  }
}
