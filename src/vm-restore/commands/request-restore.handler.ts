import { CommandHandler, EventBus, ICommandHandler } from '@nestjs/cqrs';
import { AggregateRepository } from '../../eventing/aggregate-repository';
import { restoreAggregate } from '../restore.aggregate';
import { restoreStream } from '../restore.events';
import { RestoreQueued } from '../restore.notices';
import { RequestRestoreCommand } from './request-restore.command';
import { RestoreResult, restoreResult } from './restore-result';

@CommandHandler(RequestRestoreCommand)
export class RequestRestoreHandler implements ICommandHandler<RequestRestoreCommand, RestoreResult> {
  constructor(
    private readonly aggregates: AggregateRepository,
    private readonly notices: EventBus,
  ) {}

  async execute(command: RequestRestoreCommand): Promise<RestoreResult> {
    const { restoreId, restorePointId, vmId, repositoryId, agentId, target, definition, force, knownDamage } = command;
    const result = await this.aggregates.execute(restoreStream(restoreId), restoreAggregate, { kind: 'request', restoreId, restorePointId, vmId, repositoryId, agentId, mode: command.mode, target, definition, force, knownDamage, requestedAt: new Date().toISOString() }, command);
    this.notices.publish(new RestoreQueued(restoreId));
    return restoreResult(result);
  }
}
