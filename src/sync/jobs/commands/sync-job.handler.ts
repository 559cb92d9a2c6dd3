import { CommandHandler, ICommandHandler } from '@nestjs/cqrs';
import { AggregateRepository } from '../../../eventing/aggregate-repository';
import { Appended } from '../../../eventing/command';
import { syncJobAggregate } from '../sync-job.aggregate';
import { syncJobStream } from '../sync-job.events';
import { SyncJobCommand } from './sync-job.command';

@CommandHandler(SyncJobCommand)
export class SyncJobHandler implements ICommandHandler<SyncJobCommand, Appended & { eventIds: string[] }> {
  constructor(private readonly aggregates: AggregateRepository) {}

  execute(command: SyncJobCommand): Promise<Appended & { eventIds: string[] }> {
    return this.aggregates.execute(syncJobStream(command.syncJobId), syncJobAggregate, command.decision, command);
  }
}
