import { Inject, Injectable, Logger, OnApplicationBootstrap } from '@nestjs/common';
import { CommandBus, QueryBus } from '@nestjs/cqrs';
import { realpath } from 'node:fs/promises';
import { join } from 'node:path';
import { EVENT_STORE, EventStore } from '../event-store/event-store.port';
import { DomainError } from '../eventing/domain-error';
import { causedBy } from '../eventing/request-context';
import { ProjectionsService } from '../projection-runner/projections.service';
import { RepositoriesService } from '../repositories/registry/repositories.service';
import { childOf, pointAndDescendants, pointOf } from './chain.aggregate';
import { chainStream, RESTORE_POINT_DELETE_STARTED } from './chain.events';
import { deletePointFiles } from './chain-files';
import { ChainStates } from './chain-states';
import { CompleteRestorePointDeleteCommand } from './commands/complete-restore-point-delete.command';
import { StartRestorePointDeleteCommand } from './commands/start-restore-point-delete.command';
import { FilesInUse } from './files-in-use';
import { GetRestorePointQuery } from './queries/get-restore-point.query';
import { RestorePointsBeingDeletedQuery } from './queries/restore-points-being-deleted.query';

const READ_MODEL = 'restore-points';

/**
 * Deleting a restore point: record the start (with its strategy), rewrite the chain's files,
 * record the end. The file step is safe to run again, so a delete a crash interrupted is
 * finished at the next start, still as part of the story of the request that began it.
 */
@Injectable()
export class RestorePointDeletionWorkflow implements OnApplicationBootstrap {
  private readonly logger = new Logger('restore-points');

  constructor(
    private readonly commands: CommandBus,
    private readonly queries: QueryBus,
    private readonly projections: ProjectionsService,
    @Inject(EVENT_STORE) private readonly store: EventStore,
    private readonly chains: ChainStates,
    private readonly repositories: RepositoriesService,
    private readonly filesInUse: FilesInUse,
  ) {}

  /** A delete that a crash interrupted is finished before the hub serves requests. */
  async onApplicationBootstrap(): Promise<void> {
    await this.projections.waitForCaughtUp(READ_MODEL);
    for (const view of await this.queries.execute(new RestorePointsBeingDeletedQuery())) {
      this.logger.warn(`finishing the interrupted delete of restore point ${view.restorePointId}`);
      const position = await this.resume(view.vmId, view.repositoryId, view.restorePointId).catch((e) => {
        this.logger.error(`could not finish deleting ${view.restorePointId}: ${String(e)}`);
        return null;
      });
      await this.projections.waitFor(READ_MODEL, position);
    }
  }

  /** Refused while a file of the point, or of a point reading through it, is in use. Answers once the read model shows the result. */
  async delete(restorePointId: string): Promise<void> {
    const view = await this.queries.execute(new GetRestorePointQuery(restorePointId));
    const root = (await this.repositories.definition(view.repositoryId)).root;
    const state = await this.chains.load(view.vmId, view.repositoryId);
    if (!pointOf(state, restorePointId)) throw new DomainError('not_found', `restore point ${restorePointId} does not exist`);
    const touched = await Promise.all(pointAndDescendants(state, restorePointId).flatMap((p) => p.disks.map((d) => realpath(join(root, d.file)).catch(() => join(root, d.file)))));
    const blocker = await this.filesInUse.blocker(touched);
    if (blocker) throw new DomainError('conflict', `restore point ${restorePointId} or a point above it is in use: ${blocker}`);
    const started = await this.commands.execute(new StartRestorePointDeleteCommand(view.vmId, view.repositoryId, restorePointId));
    const position = await causedBy(started.eventIds[0], () => this.finish(view.vmId, view.repositoryId, restorePointId));
    await this.projections.waitFor(READ_MODEL, position);
  }

  /** Continues under the correlation id of the request that started the delete, caused by its start event. */
  private async resume(vmId: string, repositoryId: string, restorePointId: string): Promise<string | null> {
    const started = (await this.store.readStream(chainStream(vmId, repositoryId)))
      .filter((e) => e.type === RESTORE_POINT_DELETE_STARTED && e.data.restorePointId === restorePointId)
      .at(-1);
    return started ? causedBy(started, () => this.finish(vmId, repositoryId, restorePointId)) : this.finish(vmId, repositoryId, restorePointId);
  }

  private async finish(vmId: string, repositoryId: string, restorePointId: string): Promise<string | null> {
    const state = await this.chains.load(vmId, repositoryId);
    const pending = state.pending;
    if (!pending || pending.restorePointId !== restorePointId) return null;
    const point = pointOf(state, restorePointId)!;
    const root = (await this.repositories.definition(repositoryId)).root;
    const parent = point.parentId ? pointOf(state, point.parentId) : undefined;
    const childDisks = await deletePointFiles(root, pending, point, childOf(state, restorePointId), parent);
    return (await this.commands.execute(new CompleteRestorePointDeleteCommand(vmId, repositoryId, restorePointId, childDisks))).position;
  }
}
