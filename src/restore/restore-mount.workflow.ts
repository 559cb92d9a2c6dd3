import { Inject, Injectable, Logger, OnApplicationBootstrap, OnModuleDestroy, OnModuleInit } from '@nestjs/common';
import { CommandBus, EventsHandler, IEventHandler, QueryBus } from '@nestjs/cqrs';
import { promises as fs } from 'node:fs';
import { join } from 'node:path';
import { setTimeout as sleep } from 'node:timers/promises';
import { HUB_CONFIG, HubConfig } from '../config/hub-config';
import { HUB_INSTANCE } from '../config/hub-instance';
import { causedBy } from '../eventing/request-context';
import { HubLiveness, OwnersGone } from '../projection-runner/hub-liveness';
import { ProjectionsService } from '../projection-runner/projections.service';
import { repeatAfter } from '../process/repeat';
import { FilesInUse } from '../restore-points/files-in-use';
import { MarkRestoreMountFailedCommand } from './commands/mark-restore-mount-failed.command';
import { MarkRestoreMountReadyCommand } from './commands/mark-restore-mount-ready.command';
import { ReleaseRestoreMountCommand } from './commands/release-restore-mount.command';
import { LiveMount, LiveMounts } from './live-mounts';
import { MountStories } from './mount-stories';
import { HelperExitNotice, RestorePointMounter, RestoreVolume } from './mounting';
import { ActiveRestoreMountsQuery, OthersRestoreMountsQuery } from './queries/active-restore-mounts.query';
import { MountReadingFilesQuery } from './queries/mount-reading-files.query';
import { isActive, mayRelease } from './restore-mount.aggregate';
import { MountTarget, MountVolume, ReleaseReason, RESTORE_MOUNT_RELEASED, RESTORE_MOUNT_REQUESTED } from './restore-mount.events';
import { RestoreMountAppended } from './restore-mount.notice';

export const RESTORE_READ_MODEL = 'restore-mounts';

function messageOf(error: unknown): string {
  return error instanceof Error ? error.message : String(error);
}

export function toMountVolume(v: RestoreVolume): MountVolume {
  return {
    id: v.id,
    fsType: v.fsType,
    size: v.size,
    label: v.label,
    status: v.status,
    reason: v.reason ?? null,
    start: v.start,
    partitionType: v.partitionType,
    partitionName: v.partitionName,
    uuid: v.uuid,
  };
}

/** How soon, and at most how far apart, a release whose record failed is recorded again. */
const RECORD_RETRY_FIRST_MS = 1_000;
const RECORD_RETRY_LONGEST_MS = 30_000;

/**
 * File-level restore mounts on this host: mounts the requested disk's qcow2
 * (the chain reads through) read-only under <dataDir>/restore/<mountId>, and
 * takes mounts down when a release was recorded, after the idle timeout, when
 * a helper dies, at shutdown, and (leftovers of a crash) at start. Every step
 * is caused by the event that triggered it and stays in the mount's story.
 */
@Injectable()
@EventsHandler(RestoreMountAppended)
export class RestoreMountWorkflow implements IEventHandler<RestoreMountAppended>, OnModuleInit, OnApplicationBootstrap, OnModuleDestroy {
  private readonly logger = new Logger('restore-mounts');
  private readonly mounter: RestorePointMounter;
  private readonly restoreRoot: string;
  private readonly pending = new Set<Promise<unknown>>();
  private stopping = false;
  /** Aborted at the stop: ends the waits of what is retried. */
  private readonly stopped = new AbortController();
  private readonly owners: OwnersGone;
  private orphanSweep?: { stop(): Promise<void> };

  constructor(
    @Inject(HUB_CONFIG) private readonly config: HubConfig,
    @Inject(HUB_INSTANCE) private readonly instance: string,
    private readonly commands: CommandBus,
    private readonly queries: QueryBus,
    private readonly live: LiveMounts,
    private readonly stories: MountStories,
    private readonly projections: ProjectionsService,
    private readonly filesInUse: FilesInUse,
    liveness: HubLiveness,
  ) {
    this.owners = new OwnersGone(liveness, config.goneHubAfterMs);
    this.restoreRoot = join(config.dataDir, 'restore');
    this.mounter = new RestorePointMounter({ onHelperExit: (notice) => this.track(this.onHelperExit(notice)) });
  }

  onModuleInit(): void {
    this.filesInUse.register((files) => this.blocker(files));
    this.live.whenIdle((live) => this.onIdle(live));
  }

  /** Leftovers of an earlier run (mounts, loop devices, FUSE servers, qemu-nbd) go first; then the events are told. */
  async onApplicationBootstrap(): Promise<void> {
    await fs.mkdir(this.restoreRoot, { recursive: true, mode: 0o750 });
    const report = await this.mounter.cleanupLeftovers(this.restoreRoot);
    for (const dir of report.removed) this.logger.warn(`took down a leftover restore mount in ${dir}`);
    for (const warning of report.warnings) this.logger.warn(warning);
    for (const failure of report.failures) this.logger.error(`could not take down the leftover restore mount in ${failure.workDir}: ${failure.error}`);

    await this.projections.waitForCaughtUp(RESTORE_READ_MODEL);
    let position: string | null = null;
    for (const mountId of await this.queries.execute(new ActiveRestoreMountsQuery(this.instance))) {
      const detail = report.failures.some((f) => f.workDir.endsWith(`/${mountId}`)) ? 'the hub restarted; taking down what was left of the mount failed (see the log)' : 'the hub restarted';
      position = (await this.recordRelease(mountId, 'hub-restart', detail).catch((e) => {
        this.logger.error(`could not record the release of restore mount ${mountId}: ${messageOf(e)}`);
        return null;
      })) ?? position;
    }
    await this.projections.waitFor(RESTORE_READ_MODEL, position);
    if (!this.stopping) this.orphanSweep = repeatAfter(this.config.goneHubCheckMs, () => this.takeOverOrphans());
  }

  /**
   * Mounts of a hub process that is gone for good are recorded released (`hub-gone`): only their process could
   * release them, and until then they held their points (and every older point of the chain) against deletes for
   * ever. What the gone process mounted went with its host, or its next start takes it down.
   */
  private async takeOverOrphans(): Promise<void> {
    const orphans = await this.queries.execute(new OthersRestoreMountsQuery(this.instance));
    await this.owners.takeOver(orphans, (o) => o.hubInstance, async ({ mountId }, owner) => {
      this.logger.warn(`restore mount ${mountId} was held by hub process ${owner}, which stopped and did not come back; recording it released`);
      await this.commands.execute(new ReleaseRestoreMountCommand(mountId, 'hub-gone', `its hub process ${owner} stopped and did not come back`, owner)).catch((e) => this.logger.warn(`releasing restore mount ${mountId} of a gone hub: ${messageOf(e)}`));
    }, () => this.stopping);
  }

  async onModuleDestroy(): Promise<void> {
    this.stopping = true;
    this.stopped.abort();
    await this.orphanSweep?.stop();
    for (const live of this.live.all().filter((l) => l.mounted)) {
      await this.release(live.target.mountId, 'hub-shutdown').catch((e) => this.logger.error(`unmounting restore mount ${live.target.mountId} at shutdown failed: ${messageOf(e)}`));
    }
    // Mounts still being made release themselves once mounted.
    while (this.pending.size) await Promise.allSettled([...this.pending]);
  }

  handle(notice: RestoreMountAppended): void {
    for (const event of notice.events) {
      if (event.type === RESTORE_MOUNT_REQUESTED) this.onRequested(notice.target, event.id, notice.correlationId);
      if (event.type === RESTORE_MOUNT_RELEASED) this.onReleased(notice.target, event.data.reason as ReleaseReason);
    }
  }

  /** Held from the request on, so a delete of the restore point is refused while the mount is made. */
  private onRequested(target: MountTarget, eventId: string, correlationId: string): void {
    if (target.hubInstance !== this.instance) return;
    const live = this.live.hold(target, { eventId, correlationId });
    this.track(causedBy(eventId, () => this.mount(live), correlationId).catch((e) => this.logger.error(`restore mount ${target.mountId}: ${messageOf(e)}`)));
  }

  private async mount(live: LiveMount): Promise<void> {
    const { mountId, file } = live.target;
    try {
      if (this.stopping) throw new Error('the hub is shutting down');
      live.mounted = await this.mounter.mount({ mountId, imageFile: file, workDir: join(this.restoreRoot, mountId) });
    } catch (error) {
      this.live.drop(live);
      await this.commands.execute(new MarkRestoreMountFailedCommand(mountId, messageOf(error))).catch((e) => this.logger.error(`could not record the failure of restore mount ${mountId}: ${messageOf(e)}`));
      return;
    }
    const { partitionTable, diskSize, volumes } = live.mounted;
    try {
      const ready = await this.commands.execute(new MarkRestoreMountReadyCommand(mountId, partitionTable, diskSize, volumes.map(toMountVolume)));
      if (ready.eventIds[0]) live.cause = { ...live.cause, eventId: ready.eventIds[0] };
    } catch (error) {
      this.logger.error(`could not record restore mount ${mountId} as ready; taking it down: ${messageOf(error)}`);
      await this.takeDown(live, 'requested', null, false);
      await this.commands.execute(new MarkRestoreMountFailedCommand(mountId, `recording the mount failed: ${messageOf(error)}`)).catch(() => undefined);
      return;
    }
    if (live.releaseRecorded) await (live.releasing = this.takeDown(live, 'requested', null, false));
    else if (this.stopping) await this.release(mountId, 'hub-shutdown');
    else if (!live.releasing) this.live.touch(live);
  }

  /** A release recorded on request: cut downloads off and take down what this process holds. */
  private onReleased(target: MountTarget, reason: ReleaseReason): void {
    const live = this.live.get(target.mountId);
    if (!live) {
      // Ours by the events, but nothing is held in this process (its mount failed half-way): clear what may be left.
      if (target.hubInstance === this.instance && reason === 'requested') this.track(this.mounter.unmount(target.mountId).catch((e) => this.logger.error(`unmounting restore mount ${target.mountId} failed: ${messageOf(e)}`)));
      return;
    }
    if (!live.mounted) live.releaseRecorded = true;
    else if (!live.releasing) this.track((live.releasing = this.takeDown(live, reason, null, false)));
  }

  /**
   * DELETE: the mount goes down before its release is recorded, so "released" always means
   * unmounted; a take-down that fails answers with its error and leaves the mount held and
   * recorded as active, to be released again.
   */
  async releaseOnRequest(mountId: string): Promise<void> {
    if (!mayRelease(await this.stories.state(mountId), mountId, this.instance)) return;
    await this.release(mountId, 'requested');
    await this.projections.waitForCaughtUp(RESTORE_READ_MODEL);
  }

  /**
   * Takes a mount down, then records why. Idempotent: releasing a released or
   * failed mount changes nothing. A failed take-down leaves the mount held, to be tried again.
   */
  private async release(mountId: string, reason: ReleaseReason, detail: string | null = null): Promise<void> {
    const live = this.live.get(mountId);
    if (!live) {
      const state = await this.stories.state(mountId);
      if (!isActive(state) || state.target!.hubInstance !== this.instance) return;
      await this.mounter.unmount(mountId);
      await this.recordRelease(mountId, reason, detail);
      return;
    }
    if (!live.releasing) {
      live.releasing = this.takeDown(live, reason, detail, true);
      live.releasing.catch(() => {
        live.releasing = null;
        this.live.touch(live);
      });
    }
    return live.releasing;
  }

  private async takeDown(live: LiveMount, reason: ReleaseReason, detail: string | null, record: boolean): Promise<void> {
    const { mountId } = live.target;
    this.live.abortAccesses(live, new Error(`restore mount ${mountId} was released (${reason})`));
    let warnings: string[];
    try {
      warnings = (await this.mounter.unmount(mountId)).warnings;
    } catch (error) {
      if (record) throw error;
      // The release is on record already; the next start clears whatever is left.
      this.logger.error(`taking down released restore mount ${mountId} failed: ${messageOf(error)}`);
      warnings = [];
    }
    this.live.drop(live);
    for (const warning of warnings) this.logger.warn(`restore mount ${mountId}: ${warning}`);
    if (!record) return;
    const details = [detail, ...warnings].filter((d): d is string => !!d);
    const recorded = details.length ? details.join('; ') : null;
    const send = () => this.commands.execute(new ReleaseRestoreMountCommand(mountId, reason, recorded));
    try {
      // A person's DELETE is its own cause and names its actor; any other release is caused by the mount's latest event.
      await (reason === 'requested' ? send() : causedBy(live.cause.eventId, send, live.cause.correlationId));
    } catch (error) {
      // Taken down, and still recorded active (holding its point) until a restart: recorded again until it is on
      // record. A DELETE answers with the error instead, and is sent again by its caller.
      if (reason !== 'requested') this.track(this.recordLater(mountId, reason, recorded, error));
      throw error;
    }
  }

  /** A release taken down whose record failed, recorded again (as a release of a mount no longer held) until it is on record. */
  private async recordLater(mountId: string, reason: ReleaseReason, detail: string | null, first: unknown): Promise<void> {
    let error = first;
    for (let wait = RECORD_RETRY_FIRST_MS; !this.stopped.signal.aborted; wait = Math.min(wait * 2, RECORD_RETRY_LONGEST_MS)) {
      this.logger.warn(`restore mount ${mountId} is taken down, but recording its release failed (${messageOf(error)}); trying again in ${wait} ms`);
      await sleep(wait, undefined, { signal: this.stopped.signal }).catch(() => undefined);
      // at a stop, the next start records it ('hub-restart')
      if (this.stopped.signal.aborted) return;
      try {
        await this.release(mountId, reason, detail);
        this.logger.log(`restore mount ${mountId}: its release is recorded`);
        return;
      } catch (e) {
        error = e;
      }
    }
  }

  /** For a mount this process does not hold: the release is caused by the mount's latest event. */
  private async recordRelease(mountId: string, reason: ReleaseReason, detail: string | null): Promise<string | null> {
    const story = await this.stories.of(mountId);
    const send = () => this.commands.execute(new ReleaseRestoreMountCommand(mountId, reason, detail));
    return (await (story ? causedBy(story.lastEventId, send, story.correlationId) : send())).position;
  }

  private onIdle(live: LiveMount): void {
    const idleFor = Date.now() - live.lastAccess;
    const { mountId } = live.target;
    this.logger.log(`releasing restore mount ${mountId}: idle for ${Math.round(idleFor / 1000)} s`);
    this.track(
      this.release(mountId, 'idle-timeout', `no access for ${Math.round(this.live.idleTimeoutMs / 1000)} s`).catch((e) =>
        this.logger.error(`releasing idle restore mount ${mountId} failed; retrying after the next idle period: ${messageOf(e)}`),
      ),
    );
  }

  private async onHelperExit(notice: HelperExitNotice): Promise<void> {
    const how = notice.status.signal ? `killed by ${notice.status.signal}` : notice.status.spawnError ?? `exit code ${notice.status.code}`;
    this.logger.error(`restore mount ${notice.mountId}: ${notice.program} ended unexpectedly (${how}); releasing the mount. ${notice.logTail}`);
    await this.release(notice.mountId, 'helper-exited', `${notice.program} ended unexpectedly (${how})${notice.logTail.trim() ? `: ${notice.logTail.trim().slice(-500)}` : ''}`).catch((e) =>
      this.logger.error(`releasing restore mount ${notice.mountId} after its helper died failed: ${messageOf(e)}`),
    );
  }

  /** For FilesInUse: a restore-point file that a mount (of this or any hub on this database) reads must not change. */
  private async blocker(files: string[]): Promise<string | null> {
    const held = this.live.reading(files);
    if (held) return held;
    const row = await this.queries.execute(new MountReadingFilesQuery(files));
    return row ? `restore mount ${row.mountId} (restore point ${row.restorePointId}, disk ${row.diskId}) reads these files; unmount it first` : null;
  }

  private track(work: Promise<unknown>): void {
    this.pending.add(work);
    void work.finally(() => this.pending.delete(work));
  }
}
