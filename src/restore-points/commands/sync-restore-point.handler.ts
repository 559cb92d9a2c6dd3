import { CommandHandler, ICommandHandler, QueryBus } from '@nestjs/cqrs';
import { AggregateRepository } from '../../eventing/aggregate-repository';
import { DomainError } from '../../eventing/domain-error';
import { GetRestorePointQuery } from '../queries/get-restore-point.query';
import { chainAggregate } from '../chain.aggregate';
import { chainStream } from '../chain.events';
import { ChainAppended } from './chain-appended';
import { SyncRestorePointCommand } from './sync-restore-point.command';

@CommandHandler(SyncRestorePointCommand)
export class SyncRestorePointHandler implements ICommandHandler<SyncRestorePointCommand, ChainAppended> {
  constructor(
    private readonly aggregates: AggregateRepository,
    private readonly queries: QueryBus,
  ) {}

  async execute(command: SyncRestorePointCommand): Promise<ChainAppended> {
    const { point, synced } = command;
    // a restore point id names one point on a hub: the same point in a second repository would be two
    const held = await this.queries.execute(new GetRestorePointQuery(point.restorePointId)).catch((e: unknown) => (e instanceof DomainError && e.kind === 'not_found' ? null : Promise.reject(e)));
    if (held) throw new DomainError('conflict', `restore point ${point.restorePointId} is already held here, in repository ${held.repositoryId}`);
    const { position, eventIds } = await this.aggregates.execute(chainStream(point.vmId, point.repositoryId), chainAggregate, { kind: 'sync', point, synced }, command);
    return { position, eventIds };
  }
}
