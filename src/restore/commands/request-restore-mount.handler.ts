import { Inject } from '@nestjs/common';
import { CommandHandler, EventBus, ICommandHandler, QueryBus } from '@nestjs/cqrs';
import { randomUUID } from 'node:crypto';
import { HUB_CONFIG, HubConfig } from '../../config/hub-config';
import { HUB_INSTANCE } from '../../config/hub-instance';
import { AggregateRepository } from '../../eventing/aggregate-repository';
import { currentContext } from '../../eventing/request-context';
import { RepositoriesService } from '../../repositories/registry/repositories.service';
import { resolveChainFiles } from '../adapters/chain-files';
import { RestoreMountSourceQuery } from '../queries/restore-mount-source.query';
import { restoreMountAggregate } from '../restore-mount.aggregate';
import { restoreMountStream } from '../restore-mount.events';
import { RestoreMountAppended } from '../restore-mount.notice';
import { RequestRestoreMountCommand, RestoreMountRequested } from './request-restore-mount.command';

/** Everything about the request is checked before the first event, so a refused request changes nothing. */
@CommandHandler(RequestRestoreMountCommand)
export class RequestRestoreMountHandler implements ICommandHandler<RequestRestoreMountCommand, RestoreMountRequested> {
  constructor(
    private readonly aggregates: AggregateRepository,
    private readonly queries: QueryBus,
    private readonly events: EventBus,
    @Inject(HUB_INSTANCE) private readonly instance: string,
    @Inject(HUB_CONFIG) private readonly config: HubConfig,
    private readonly repositories: RepositoriesService,
  ) {}

  async execute(command: RequestRestoreMountCommand): Promise<RestoreMountRequested> {
    const source = await this.queries.execute(new RestoreMountSourceQuery(command.restorePointId));
    await this.repositories.usable(source.repositoryId);
    const point = await resolveChainFiles(source);
    const mountId = randomUUID();
    const result = await this.aggregates.execute(
      restoreMountStream(mountId),
      restoreMountAggregate,
      { kind: 'request', mountId, point, diskId: command.diskId, hubInstance: this.instance, idleTimeoutSeconds: Math.round(this.config.restoreIdleMs / 1000) },
      command,
    );
    this.events.publish(new RestoreMountAppended(result.state.target!, result.events.map((e, i) => ({ id: result.eventIds[i], type: e.type, data: e.data })), currentContext().correlationId));
    return { mountId, eventIds: result.eventIds, position: result.position };
  }
}
