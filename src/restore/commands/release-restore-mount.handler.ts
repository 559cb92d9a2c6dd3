import { Inject } from '@nestjs/common';
import { CommandHandler, EventBus, ICommandHandler } from '@nestjs/cqrs';
import { HUB_INSTANCE } from '../../config/hub-instance';
import { Appended } from '../../eventing/command';
import { AggregateRepository } from '../../eventing/aggregate-repository';
import { currentContext, runWithContext } from '../../eventing/request-context';
import { MountStories } from '../mount-stories';
import { restoreMountAggregate } from '../restore-mount.aggregate';
import { restoreMountStream } from '../restore-mount.events';
import { RestoreMountAppended } from '../restore-mount.notice';
import { ReleaseRestoreMountCommand } from './release-restore-mount.command';

/**
 * The release belongs to the mount's story whoever asks for it: it carries the correlation id
 * of the request that created the mount. This process may release only what it holds.
 */
@CommandHandler(ReleaseRestoreMountCommand)
export class ReleaseRestoreMountHandler implements ICommandHandler<ReleaseRestoreMountCommand, Appended & { eventIds: string[] }> {
  constructor(
    private readonly aggregates: AggregateRepository,
    private readonly stories: MountStories,
    private readonly events: EventBus,
    @Inject(HUB_INSTANCE) private readonly instance: string,
  ) {}

  async execute(command: ReleaseRestoreMountCommand): Promise<Appended & { eventIds: string[] }> {
    const correlationId = (await this.stories.of(command.mountId))?.correlationId ?? currentContext().correlationId;
    const decision = { kind: 'release' as const, mountId: command.mountId, reason: command.reason, detail: command.detail, hubInstance: this.instance, ...(command.from !== undefined ? { from: command.from } : {}) };
    const result = await runWithContext({ ...currentContext(), correlationId }, () => this.aggregates.execute(restoreMountStream(command.mountId), restoreMountAggregate, decision, command));
    if (result.events.length) this.events.publish(new RestoreMountAppended(result.state.target!, result.events.map((e, i) => ({ id: result.eventIds[i], type: e.type, data: e.data })), correlationId));
    return { eventIds: result.eventIds, position: result.position };
  }
}
