import { CommandHandler, ICommandHandler, QueryBus } from '@nestjs/cqrs';
import { AggregateRepository } from '../../eventing/aggregate-repository';
import { DomainError } from '../../eventing/domain-error';
import { GetRestorePointQuery } from '../queries/get-restore-point.query';
import { chainAggregate, pointOf } from '../chain.aggregate';
import { CHAIN_BROKEN, chainStream, RestorePoint } from '../chain.events';
import { PointIdHolder, pointIdAggregate } from '../point-id.aggregate';
import { pointIdStream } from '../point-id.events';
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
    // the read model knows nothing yet of a point another rescan records at this moment: the id's own stream decides,
    // for a point this chain would take (one it would refuse claims nothing: the other rescan keeps its parent and it)
    const { state: chain } = await this.aggregates.load(chainStream(point.vmId, point.repositoryId), chainAggregate);
    if (!pointOf(chain, point.restorePointId) && !missingFiles.length && (!point.parentId || pointOf(chain, point.parentId))) {
      const claim = { restorePointId: point.restorePointId, repositoryId: point.repositoryId, vmId: point.vmId, now: new Date().toISOString(), gone: await this.goneHolder(point) };
      const taken = await this.aggregates.execute(pointIdStream(point.restorePointId), pointIdAggregate, claim, command).then(
        () => null,
        (e: unknown) => (e instanceof DomainError && e.kind === 'conflict' ? e.message : Promise.reject(e)),
      );
      if (taken) return { outcome: 'duplicate', reason: taken, position: null, eventIds: [] };
    }
    const { events, position, eventIds } = await this.aggregates.execute(chainStream(point.vmId, point.repositoryId), chainAggregate, { kind: 'recordRescanFinding', point, missingFiles }, command);
    const broken = events.find((e) => e.type === CHAIN_BROKEN);
    const outcome = events.length === 0 ? 'known' : broken ? 'broken' : 'added';
    return { outcome, reason: broken ? (broken.data as { reason: string }).reason : null, position, eventIds };
  }

  /** The id's holder elsewhere when its chain no longer has the point (deleted since, or never recorded). */
  private async goneHolder(point: RestorePoint): Promise<PointIdHolder | undefined> {
    const { holder } = (await this.aggregates.load(pointIdStream(point.restorePointId), pointIdAggregate)).state;
    if (!holder || (holder.repositoryId === point.repositoryId && holder.vmId === point.vmId)) return undefined;
    const { state } = await this.aggregates.load(chainStream(holder.vmId, holder.repositoryId), chainAggregate);
    return pointOf(state, point.restorePointId) ? undefined : holder;
  }
}
