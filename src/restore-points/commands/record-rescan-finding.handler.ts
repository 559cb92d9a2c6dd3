import { CommandHandler, ICommandHandler, QueryBus } from '@nestjs/cqrs';
import { AggregateRepository } from '../../eventing/aggregate-repository';
import { DomainError } from '../../eventing/domain-error';
import { GetRestorePointQuery } from '../queries/get-restore-point.query';
import { chainAggregate } from '../chain.aggregate';
import { CHAIN_BROKEN, chainStream } from '../chain.events';
import { RecordRescanFindingCommand, RescanFinding } from './record-rescan-finding.command';

@CommandHandler(RecordRescanFindingCommand)
export class RecordRescanFindingHandler implements ICommandHandler<RecordRescanFindingCommand, RescanFinding> {
  constructor(
    private readonly aggregates: AggregateRepository,
    private readonly queries: QueryBus,
  ) {}

  async execute(command: RecordRescanFindingCommand): Promise<RescanFinding> {
    const { point, missingFiles } = command;
    // a restore point id names one point on a hub: a copy of a repository registered beside it, or a synced point's
    // source found again, is not recorded a second time (the read model would refuse it, and stop there for good)
    const held = await this.queries.execute(new GetRestorePointQuery(point.restorePointId)).catch((e: unknown) => (e instanceof DomainError && e.kind === 'not_found' ? null : Promise.reject(e)));
    if (held && (held.repositoryId !== point.repositoryId || held.vmId !== point.vmId)) {
      return { outcome: 'duplicate', reason: `held already in repository ${held.repositoryId} as a point of VM ${held.vmId}`, position: null, eventIds: [] };
    }
    const { events, position, eventIds } = await this.aggregates.execute(chainStream(point.vmId, point.repositoryId), chainAggregate, { kind: 'recordRescanFinding', point, missingFiles }, command);
    const broken = events.find((e) => e.type === CHAIN_BROKEN);
    const outcome = events.length === 0 ? 'known' : broken ? 'broken' : 'added';
    return { outcome, reason: broken ? (broken.data as { reason: string }).reason : null, position, eventIds };
  }
}
