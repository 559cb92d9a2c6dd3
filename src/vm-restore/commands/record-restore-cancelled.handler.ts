import { CommandHandler, ICommandHandler } from '@nestjs/cqrs';
import { AggregateRepository } from '../../eventing/aggregate-repository';
import { restoreAggregate } from '../restore.aggregate';
import { restoreStream } from '../restore.events';
import { RecordRestoreCancelledCommand } from './record-restore-cancelled.command';
import { RestoreResult, restoreResult } from './restore-result';

@CommandHandler(RecordRestoreCancelledCommand)
export class RecordRestoreCancelledHandler implements ICommandHandler<RecordRestoreCancelledCommand, RestoreResult> {
  constructor(private readonly aggregates: AggregateRepository) {}

  async execute(command: RecordRestoreCancelledCommand): Promise<RestoreResult> {
    return restoreResult(await this.aggregates.execute(restoreStream(command.restoreId), restoreAggregate, { kind: 'cancelled' }, command));
  }
}
