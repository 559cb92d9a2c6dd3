import { Inject, Injectable, InternalServerErrorException, Logger, OnApplicationBootstrap, OnApplicationShutdown } from '@nestjs/common';
import { CommandBus, QueryBus } from '@nestjs/cqrs';
import { realpath } from 'node:fs/promises';
import { join } from 'node:path';
import { HUB_CONFIG, HubConfig } from '../config/hub-config';
import { HUB_INSTANCE } from '../config/hub-instance';
import { EVENT_STORE, EventStore } from '../event-store/event-store.port';
import { DomainError } from '../eventing/domain-error';
import { causedBy, currentContext } from '../eventing/request-context';
import { HubLiveness, OwnersGone } from '../projection-runner/hub-liveness';
import { ProjectionsService } from '../projection-runner/projections.service';
import { repeatAfter } from '../process/repeat';
import { ChunkSpaceWorkflow } from '../repositories/chunk-space.workflow';
import { RepositoriesService } from '../repositories/registry/repositories.service';
import { childOf, pointAndDescendants, pointOf } from './chain.aggregate';
import { chainStream, RESTORE_POINT_DELETE_STARTED, RESTORE_POINT_RECYCLED } from './chain.events';
import { deletePointFiles, pointFiles } from './chain-files';
import { refuseWhileImmutable } from './immutability';
import { setImmutable } from '../repositories/adapters/immutable-files';
import { ChainStates } from './chain-states';
import { AdoptRestorePointDeleteCommand } from './commands/adopt-restore-point-delete.command';
import { CompleteRestorePointDeleteCommand } from './commands/complete-restore-point-delete.command';
import { FailRestorePointDeleteCommand } from './commands/fail-restore-point-delete.command';
import { filesAsBefore } from './delete-undo';
import { RecycleRestorePointCommand } from './commands/recycle-restore-point.command';
import { StartRestorePointDeleteCommand } from './commands/start-restore-point-delete.command';
import { UndeleteRestorePointCommand } from './commands/undelete-restore-point.command';
import { FilesInUse } from './files-in-use';
import { GetRestorePointQuery } from './queries/get-restore-point.query';
import { RecycleBinQuery } from './queries/recycle-bin.query';
import { RestorePointsBeingDeletedQuery } from './queries/restore-points-being-deleted.query';

const READ_MODEL = 'restore-points';

/**
 * Deleting a restore point: a delete (or a prune) first moves it to the recycle bin for the grace period, its files
 * untouched, so a stolen token cannot destroy a point at once; when the grace ends (or with none, or an admin's purge)
 * the point is purged: record the start (with its strategy), rewrite the chain's files, record the end. The file step
 * is safe to run again, so a purge a crash interrupted is finished at the next start, still as part of the story of
 * the request that began it.
 */
@Injectable()
export class RestorePointDeletionWorkflow implements OnApplicationBootstrap, OnApplicationShutdown {
  private readonly logger = new Logger('restore-points');
  private purgeTimer: NodeJS.Timeout | null = null;
  private purging: Promise<void> = Promise.resolve();
  private readonly owners: OwnersGone;
  private orphanSweep?: { stop(): Promise<void> };

  constructor(
    private readonly commands: CommandBus,
    private readonly queries: QueryBus,
    private readonly projections: ProjectionsService,
    @Inject(EVENT_STORE) private readonly store: EventStore,
    private readonly chains: ChainStates,
    private readonly repositories: RepositoriesService,
    private readonly filesInUse: FilesInUse,
    @Inject(HUB_CONFIG) private readonly config: HubConfig,
    private readonly chunkSpace: ChunkSpaceWorkflow,
    @Inject(HUB_INSTANCE) private readonly instance: string,
    liveness: HubLiveness,
  ) {
    this.owners = new OwnersGone(liveness, config.goneHubAfterMs);
  }

  /**
   * A delete that a crash interrupted is finished before the hub serves requests, if this process ran it (or no
   * process was named); another process's is its own to finish, or this one's once that process is gone for good.
   */
  async onApplicationBootstrap(): Promise<void> {
    await this.projections.waitForCaughtUp(READ_MODEL);
    for (const { owner, ...view } of await this.pendingDeletes()) {
      if (owner !== undefined && owner !== this.instance) continue;
      this.logger.warn(`finishing the interrupted delete of restore point ${view.restorePointId}`);
      const position = await this.resume(view.vmId, view.repositoryId, view.restorePointId).catch((e) => {
        this.logger.error(`could not finish deleting ${view.restorePointId}: ${String(e)}`);
        return null;
      });
      await this.projections.waitFor(READ_MODEL, position);
    }
    if (this.config.deleteGraceMs > 0) this.schedulePurge();
    this.orphanSweep = repeatAfter(this.config.goneHubCheckMs, () => this.takeOverOrphans());
  }

  /** Deletes whose hub process is gone for good: taken over on the chain's stream (one process wins), then finished. */
  private async takeOverOrphans(): Promise<void> {
    const orphans = (await this.pendingDeletes()).filter((d): d is typeof d & { owner: string } => d.owner !== undefined && d.owner !== this.instance);
    await this.owners.takeOver(orphans, (o) => o.owner, async ({ vmId, repositoryId, restorePointId }, owner) => {
      this.logger.warn(`restore point ${restorePointId}: its delete was left by hub process ${owner}, which stopped and did not come back; finishing it`);
      // in the story of the request that began the delete, as its end will be
      const started = await this.startOf(vmId, repositoryId, restorePointId);
      const adopt = () => this.commands.execute(new AdoptRestorePointDeleteCommand(vmId, repositoryId, restorePointId, this.instance, owner));
      const taken = await (started ? causedBy(started, adopt) : adopt()).then(
        () => true,
        (e: unknown) => (this.logger.warn(`taking over the delete of ${restorePointId}: ${String(e)}`), false),
      );
      if (!taken) return;
      const position = await this.resume(vmId, repositoryId, restorePointId).catch((e) => (this.logger.error(`could not finish deleting ${restorePointId}: ${String(e)}`), null));
      await this.projections.waitFor(READ_MODEL, position);
    }, () => !this.orphanSweep);
  }

  async onApplicationShutdown(): Promise<void> {
    const sweep = this.orphanSweep;
    this.orphanSweep = undefined;
    await sweep?.stop();
    if (this.purgeTimer) clearTimeout(this.purgeTimer);
    this.purgeTimer = null;
    await this.purging;
  }

  /**
   * To the recycle bin until the grace ends (`recycled`), or purged at once when the hub has no grace or an admin asks
   * for it (`purge`: null). Refused as a purge would be while the point is immutable, so the bin holds no point its
   * lock would keep. A point already in the bin keeps its grace.
   */
  async delete(restorePointId: string, opts: { reason?: string; purge?: boolean } = {}): Promise<{ purgeAfter: Date | null }> {
    if (opts.purge || this.config.deleteGraceMs === 0) {
      await this.purge(restorePointId);
      return { purgeAfter: null };
    }
    const view = await this.queries.execute(new GetRestorePointQuery(restorePointId));
    const repository = await this.repositories.usable(view.repositoryId);
    const state = await this.chains.load(view.vmId, view.repositoryId);
    if (!pointOf(state, restorePointId)) throw new DomainError('not_found', `restore point ${restorePointId} does not exist`);
    const now = new Date();
    refuseWhileImmutable(repository, state, restorePointId, now);
    const purgeAfter = new Date(now.getTime() + this.config.deleteGraceMs);
    const recycled = await this.commands.execute(new RecycleRestorePointCommand(view.vmId, view.repositoryId, restorePointId, now, purgeAfter, currentContext().actor, opts.reason ?? 'deleted'));
    await this.projections.waitFor(READ_MODEL, recycled.position);
    return { purgeAfter: new Date((await this.chains.load(view.vmId, view.repositoryId)).recycled[restorePointId]?.purgeAfter ?? purgeAfter) };
  }

  /** Back out of the recycle bin, its files as they were: it is a restore point again, in its place in the chain. */
  async undelete(restorePointId: string): Promise<void> {
    const view = await this.queries.execute(new GetRestorePointQuery(restorePointId));
    const undeleted = await this.commands.execute(new UndeleteRestorePointCommand(view.vmId, view.repositoryId, restorePointId, currentContext().actor));
    await this.projections.waitFor(READ_MODEL, undeleted.position);
  }

  private schedulePurge(): void {
    this.purgeTimer = setTimeout(() => {
      this.purging = this.purgeDue()
        .catch((e) => this.logger.error(`purging the recycle bin: ${String(e)}`))
        .finally(() => {
          if (this.purgeTimer) this.schedulePurge();
        });
    }, this.config.recyclePurgeIntervalMs);
    this.purgeTimer.unref();
  }

  /**
   * Purges the points whose grace ended, each as part of the story of the delete that recycled it: per chain oldest
   * first (each merges into the next), newest first in an immutable repository (whole chains go, as retention orders
   * them). A point that cannot go yet (in use, still locked) stays in the bin and is tried at the next round.
   */
  private async purgeDue(now = new Date()): Promise<void> {
    const due = await this.queries.execute(new RecycleBinQuery(now));
    const chains = new Map<string, typeof due>();
    for (const p of due) chains.set(`${p.vmId}/${p.repositoryId}`, [...(chains.get(`${p.vmId}/${p.repositoryId}`) ?? []), p]);
    for (const points of chains.values()) {
      points.sort((a, b) => (a.chainPosition < b.chainPosition ? -1 : 1));
      const immutable = !!(await this.repositories.definition(points[0].repositoryId)).immutableDays;
      for (const p of immutable ? points.reverse() : points) {
        if (!this.purgeTimer) return;
        const recycled = (await this.store.readStream(chainStream(p.vmId, p.repositoryId))).filter((e) => e.type === RESTORE_POINT_RECYCLED && e.data.restorePointId === p.restorePointId).at(-1);
        const purge = () => this.purge(p.restorePointId, now);
        await (recycled ? causedBy(recycled, purge) : purge()).catch((e) => this.logger.warn(`restore point ${p.restorePointId} stays in the recycle bin for now: ${String(e)}`));
      }
    }
  }

  /**
   * Refused while a file of the point, or of a point reading through it, is in use. Answers once the read model shows
   * the result. `dueBy`: a round of the recycle bin's purge, which takes the point only if it is still there then.
   */
  private async purge(restorePointId: string, dueBy?: Date): Promise<void> {
    const view = await this.queries.execute(new GetRestorePointQuery(restorePointId));
    const repository = await this.repositories.usable(view.repositoryId);
    const root = repository.root;
    const state = await this.chains.load(view.vmId, view.repositoryId);
    if (!pointOf(state, restorePointId)) throw new DomainError('not_found', `restore point ${restorePointId} does not exist`);
    refuseWhileImmutable(repository, state, restorePointId, new Date());
    const touched = await Promise.all(pointAndDescendants(state, restorePointId).flatMap((p) => p.disks.map((d) => realpath(join(root, d.file)).catch(() => join(root, d.file)))));
    const blocker = await this.filesInUse.blocker(touched);
    if (blocker) throw new DomainError('conflict', `restore point ${restorePointId} or a point above it is in use: ${blocker}`);
    const started = await this.commands.execute(new StartRestorePointDeleteCommand(view.vmId, view.repositoryId, restorePointId, dueBy?.toISOString(), this.instance));
    // A backup recorded as started after the check above but before the start was recorded holds the chain now: it
    // sees this delete pending and waits, so the delete checks again and steps back (nothing was touched yet).
    const late = await this.filesInUse.blocker(touched);
    if (late) {
      const reason = `restore point ${restorePointId} or a point above it is in use: ${late}`;
      const failed = await causedBy(started.eventIds[0], () => this.commands.execute(new FailRestorePointDeleteCommand(view.vmId, view.repositoryId, restorePointId, reason, true)));
      await this.projections.waitFor(READ_MODEL, failed.position);
      throw new DomainError('conflict', reason);
    }
    const position = await causedBy(started.eventIds[0], () => this.finishOrStop(view.vmId, view.repositoryId, restorePointId));
    await this.projections.waitFor(READ_MODEL, position);
  }

  /** Continues under the correlation id of the request that started the delete, caused by its start event. */
  private async resume(vmId: string, repositoryId: string, restorePointId: string): Promise<string | null> {
    const started = await this.startOf(vmId, repositoryId, restorePointId);
    return started ? causedBy(started, () => this.finishOrStop(vmId, repositoryId, restorePointId)) : this.finishOrStop(vmId, repositoryId, restorePointId);
  }

  /** The points being deleted, each with the hub process its chain names as running the delete (none for an unnamed one). */
  private async pendingDeletes() {
    const views = await this.queries.execute(new RestorePointsBeingDeletedQuery());
    return Promise.all(views.map(async (view) => ({ ...view, owner: (await this.chains.load(view.vmId, view.repositoryId)).pending?.hubInstance })));
  }

  /** The event that began the point's pending delete. */
  private async startOf(vmId: string, repositoryId: string, restorePointId: string) {
    return (await this.store.readStream(chainStream(vmId, repositoryId))).filter((e) => e.type === RESTORE_POINT_DELETE_STARTED && e.data.restorePointId === restorePointId).at(-1);
  }

  /**
   * A delete never stays pending: when the file surgery fails it is undone if the files are as before, else
   * tried once more (every step is safe to repeat), and if that fails too it is recorded as stopped with the point
   * unusable. The chain is free again either way; the caller gets the reason.
   */
  private async finishOrStop(vmId: string, repositoryId: string, restorePointId: string): Promise<string | null> {
    try {
      return await this.finish(vmId, repositoryId, restorePointId);
    } catch (first) {
      const state = await this.chains.load(vmId, repositoryId);
      const pending = state.pending;
      if (!pending || pending.restorePointId !== restorePointId) throw first;
      const point = pointOf(state, restorePointId)!;
      const root = (await this.repositories.definition(repositoryId)).root;
      let reason = first instanceof Error ? first.message : String(first);
      let undone = await filesAsBefore(root, pending, point, childOf(state, restorePointId)).catch(() => false);
      if (!undone) {
        const retried = await this.finish(vmId, repositoryId, restorePointId).then(
          (position) => ({ position }),
          (e: unknown) => ({ error: e instanceof Error ? e.message : String(e) }),
        );
        if ('position' in retried) return retried.position;
        reason = retried.error;
        undone = await filesAsBefore(root, pending, point, childOf(state, restorePointId)).catch(() => false);
      }
      this.logger.error(`deleting restore point ${restorePointId} failed (${undone ? 'undone' : 'stopped midway'}): ${reason}`);
      const failed = await this.commands.execute(new FailRestorePointDeleteCommand(vmId, repositoryId, restorePointId, reason, undone));
      await this.projections.waitFor(READ_MODEL, failed.position);
      throw new InternalServerErrorException(
        undone
          ? `deleting restore point ${restorePointId} failed and was undone (the point is unchanged): ${reason}`
          : `deleting restore point ${restorePointId} stopped midway: ${reason}; the point is marked unusable and DELETE it again to finish`,
      );
    }
  }

  private async finish(vmId: string, repositoryId: string, restorePointId: string): Promise<string | null> {
    const state = await this.chains.load(vmId, repositoryId);
    const pending = state.pending;
    if (!pending || pending.restorePointId !== restorePointId) return null;
    const point = pointOf(state, restorePointId)!;
    const repository = await this.repositories.definition(repositoryId);
    const root = repository.root;
    const parent = point.parentId ? pointOf(state, point.parentId) : undefined;
    const child = childOf(state, restorePointId);
    // the delete was let through because both locks expired: their files are cleared for the surgery
    if (repository.immutableDays) await setImmutable([point, ...(child ? [child] : [])].flatMap((p) => pointFiles(root, p)), false);
    const childDisks = await deletePointFiles(root, pending, point, child, parent);
    const position = (await this.commands.execute(new CompleteRestorePointDeleteCommand(vmId, repositoryId, restorePointId, childDisks))).position;
    // the chunks only this point named are garbage now: a chunks repository is collected soon (nothing for qcow2)
    this.chunkSpace.schedule(repositoryId, true);
    return position;
  }
}
