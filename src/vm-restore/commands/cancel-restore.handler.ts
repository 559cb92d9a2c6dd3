import { CommandHandler, EventBus, ICommandHandler } from '@nestjs/cqrs';
import { AggregateRepository } from '../../eventing/aggregate-repository';
import { restoreAggregate } from '../restore.aggregate';
import { restoreStream } from '../restore.events';
import { RestoreCancelNotice } from '../restore.notices';
import { CancelRestoreCommand } from './cancel-restore.command';
import { RestoreResult, restoreResult } from './restore-result';

/** Records the cancel; the workflow running the restore stops the agent, which undoes what it made. */
@CommandHandler(CancelRestoreCommand)
export class CancelRestoreHandler implements ICommandHandler<CancelRestoreCommand, RestoreResult> {
  constructor(
    private readonly aggregates: AggregateRepository,
    private readonly notices: EventBus,
  ) {}

  async execute(command: CancelRestoreCommand): Promise<RestoreResult> {
    const result = await this.aggregates.execute(restoreStream(command.restoreId), restoreAggregate, { kind: 'cancel' }, command);
    this.notices.publish(new RestoreCancelNotice(command.restoreId, result.eventIds[0] ?? null));
    return restoreResult(result);
  }
}
