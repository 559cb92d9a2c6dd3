import { Inject, Injectable, Logger, OnApplicationBootstrap, OnModuleDestroy, OnModuleInit } from '@nestjs/common';
import { randomUUID } from 'node:crypto';
import { promises as fs } from 'node:fs';
import { join } from 'node:path';
import { DataSource, In } from 'typeorm';
import { RestoreMountView } from '../../projections/restore-mounts/restore-mount.entity';
import { RestorePointView } from '../../projections/restore-points/restore-point.entity';
import { HUB_CONFIG, HubConfig } from '../config/hub-config';
import { AggregateRepository } from '../eventing/aggregate-repository';
import { DomainError } from '../eventing/domain-error';
import { HUB_INSTANCE } from '../config/hub-instance';
import { ProjectionsService } from '../projection-runner/projections.service';
import { RepositoriesService } from '../repositories/registry/repositories.service';
import { pointOf } from '../restore-points/chain.aggregate';
import { FilesInUse } from '../restore-points/files-in-use';
import { RestorePointsService } from '../restore-points/restore-points.service';
import { HelperExitNotice, MountedRestorePoint, RestorePointMounter, RestoreVolume } from './mounting';
import { loadRestoreConfig, RestoreConfig } from './restore-config';
import { isActive, restoreMountAggregate, RestoreMountCommand, RestoreMountState } from './restore-mount.aggregate';
import { MountTarget, MountVolume, ReleaseReason, restoreMountStream } from './restore-mount.events';

export const RESTORE_READ_MODEL = 'restore-mounts';

/** Browsing is recorded as RestoreMountAccessed at most this often per mount (and at most 4 times per idle period). */
const ACCESS_EVENT_INTERVAL_MS = 60_000;

/** What this hub process holds for one of its mounts. */
interface LiveMount {
  mountId: string;
  restorePointId: string;
  diskId: string;
  /** Real paths the mount reads (the image and its backing chain): deletes and merges of these are refused. */
  files: string[];
  mounted: MountedRestorePoint | null;
  lastAccess: number;
  lastAccessEvent: number;
  timer: NodeJS.Timeout | null;
  /** Downloads and listings under way; the idle timeout never releases a mount in use. */
  inFlight: number;
  /** Aborts every download under way, so a release does not wait for slow clients. */
  aborts: Set<(reason: Error) => void>;
  releasing: Promise<string | null> | null;
}

export interface MountStarted {
  mountId: string;
  position: string | null;
}

export interface BrowsableVolume {
  mountId: string;
  volume: RestoreVolume;
  /** The host directory the volume is mounted on. */
  root: string;
}

/** Reported in place of the read model's values while this process holds the mount: they move with every access. */
export interface LiveAccess {
  lastAccessAt: Date;
  expiresAt: Date;
}

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

function describeVolume(v: RestoreVolume): string {
  return `${v.id} (${v.fsType ?? 'unknown'}, ${v.status})`;
}

/**
 * File-level restore mounts: picks the restore point's disk, mounts its
 * qcow2 (the chain reads through) read-only under
 * <dataDir>/restore/<mountId>, records every step, and takes mounts down on
 * request, after the idle timeout, when a helper dies, at shutdown, and
 * (leftovers of a crash) at start.
 */
@Injectable()
export class RestoreMountsService implements OnModuleInit, OnApplicationBootstrap, OnModuleDestroy {
  private readonly logger = new Logger('restore-mounts');
  private readonly mounter: RestorePointMounter;
  private readonly live = new Map<string, LiveMount>();
  private readonly restoreConfig: RestoreConfig;
  readonly restoreRoot: string;
  private readonly pending = new Set<Promise<unknown>>();
  private stopping = false;

  constructor(
    @Inject(HUB_CONFIG) config: HubConfig,
    @Inject(HUB_INSTANCE) private readonly instance: string,
    private readonly aggregates: AggregateRepository,
    private readonly dataSource: DataSource,
    private readonly projections: ProjectionsService,
    private readonly points: RestorePointsService,
    private readonly repositories: RepositoriesService,
    private readonly filesInUse: FilesInUse,
  ) {
    this.restoreConfig = loadRestoreConfig(process.env);
    this.restoreRoot = join(config.dataDir, 'restore');
    this.mounter = new RestorePointMounter({ onHelperExit: (notice) => this.track(this.onHelperExit(notice)) });
  }

  get idleTimeoutMs(): number {
    return this.restoreConfig.idleTimeoutMs;
  }

  onModuleInit(): void {
    this.filesInUse.register((files) => this.blocker(files));
  }

  /** Leftovers of an earlier run (mounts, loop devices, FUSE servers, qemu-nbd) go first; then the events are told. */
  async onApplicationBootstrap(): Promise<void> {
    await fs.mkdir(this.restoreRoot, { recursive: true, mode: 0o750 });
    const report = await this.mounter.cleanupLeftovers(this.restoreRoot);
    for (const dir of report.removed) this.logger.warn(`took down a leftover restore mount in ${dir}`);
    for (const warning of report.warnings) this.logger.warn(warning);
    for (const failure of report.failures) this.logger.error(`could not take down the leftover restore mount in ${failure.workDir}: ${failure.error}`);

    await this.projections.waitForCaughtUp(RESTORE_READ_MODEL);
    const stale = await this.dataSource.getRepository(RestoreMountView).findBy({ status: In(['mounting', 'ready']), hubInstance: this.instance });
    let position: string | null = null;
    for (const view of stale) {
      const detail = report.failures.some((f) => f.workDir.endsWith(`/${view.mountId}`)) ? 'the hub restarted; taking down what was left of the mount failed (see the log)' : 'the hub restarted';
      position = (await this.record(view.mountId, { kind: 'release', reason: 'hub-restart', detail }).catch((e) => {
        this.logger.error(`could not record the release of restore mount ${view.mountId}: ${messageOf(e)}`);
        return { position: null };
      })).position ?? position;
    }
    await this.projections.waitFor(RESTORE_READ_MODEL, position);
  }

  async onModuleDestroy(): Promise<void> {
    this.stopping = true;
    for (const live of [...this.live.values()]) {
      await this.release(live.mountId, 'hub-shutdown').catch((e) => this.logger.error(`unmounting restore mount ${live.mountId} at shutdown failed: ${messageOf(e)}`));
    }
    while (this.pending.size) await Promise.allSettled([...this.pending]);
  }

  /** Mounts one disk of a restore point; resolves once every volume was tried. */
  async mount(restorePointId: string, diskId?: string): Promise<MountStarted> {
    if (this.stopping) throw new DomainError('conflict', 'the hub is shutting down');
    const target = await this.targetFor(restorePointId, diskId);
    const live: LiveMount = {
      mountId: target.mountId,
      restorePointId,
      diskId: target.diskId,
      files: target.chainFiles,
      mounted: null,
      lastAccess: Date.now(),
      lastAccessEvent: Date.now(),
      timer: null,
      inFlight: 0,
      aborts: new Set(),
      releasing: null,
    };
    // Held before the first event, so a delete of the restore point is refused from here on.
    this.live.set(target.mountId, live);
    try {
      await this.record(target.mountId, { kind: 'request', target });
    } catch (error) {
      this.live.delete(target.mountId);
      throw error;
    }

    let mounted: MountedRestorePoint;
    try {
      mounted = await this.mounter.mount({ mountId: target.mountId, imageFile: target.file, workDir: join(this.restoreRoot, target.mountId) });
    } catch (error) {
      if (this.live.get(target.mountId) === live && !live.releasing) this.live.delete(target.mountId);
      const reason = messageOf(error);
      await this.record(target.mountId, { kind: 'recordFailed', reason });
      throw new DomainError('conflict', `restore point ${restorePointId} disk ${target.diskId} could not be mounted (restore mount ${target.mountId}): ${reason}`);
    }
    live.mounted = mounted;
    const ready = await this.record(target.mountId, { kind: 'recordReady', partitionTable: mounted.partitionTable, diskSize: mounted.diskSize, volumes: mounted.volumes.map(toMountVolume) });
    if (!live.releasing) this.touch(live);
    return { mountId: target.mountId, position: ready.position };
  }

  /**
   * Takes a mount down and records why. Idempotent: releasing a released or
   * failed mount changes nothing. Downloads under way are cut off.
   */
  async release(mountId: string, reason: ReleaseReason, detail: string | null = null): Promise<string | null> {
    const { state } = await this.aggregates.load(restoreMountStream(mountId), restoreMountAggregate);
    if (state.status === 'none') throw new DomainError('not_found', `restore mount ${mountId} does not exist`);
    const live = this.live.get(mountId);
    if (!live) {
      if (!isActive(state)) return null;
      if (state.target!.hubInstance !== this.instance) throw new DomainError('conflict', `restore mount ${mountId} is held by another hub process; release it there`);
      // Ours by the events, but nothing is held in this process (its mount failed half-way): just record it.
      await this.mounter.unmount(mountId);
      return (await this.record(mountId, { kind: 'release', reason, detail })).position;
    }
    if (!live.releasing) {
      live.releasing = this.takeDown(live, reason, detail);
      live.releasing.catch(() => {
        live.releasing = null;
        this.touch(live);
      });
    }
    return live.releasing;
  }

  /** The mount as the read model has it; 404 when unknown. */
  async view(mountId: string): Promise<RestoreMountView> {
    const view = await this.dataSource.getRepository(RestoreMountView).findOneBy({ mountId });
    if (!view) throw new DomainError('not_found', `restore mount ${mountId} does not exist`);
    return view;
  }

  async list(filter: { status?: RestoreMountView['status']; restorePointId?: string }): Promise<RestoreMountView[]> {
    return this.dataSource.getRepository(RestoreMountView).find({ where: { ...(filter.status ? { status: filter.status } : {}), ...(filter.restorePointId ? { restorePointId: filter.restorePointId } : {}) }, order: { requestedAt: 'DESC' } });
  }

  liveAccess(mountId: string): LiveAccess | null {
    const live = this.live.get(mountId);
    if (!live?.mounted || live.releasing) return null;
    return { lastAccessAt: new Date(live.lastAccess), expiresAt: new Date(live.lastAccess + this.idleTimeoutMs) };
  }

  /** Mount ids this process holds right now. */
  heldMountIds(): string[] {
    return [...this.live.keys()];
  }

  /**
   * The volume to browse: `volumeId`, or the only mounted volume when none
   * is named. 404 for an unknown mount or volume, 409 for one that is not
   * ready, is held elsewhere, or cannot be browsed; 400 when a choice is needed.
   */
  async volume(mountId: string, volumeId: string | undefined): Promise<BrowsableVolume> {
    const live = this.live.get(mountId);
    if (!live?.mounted || live.releasing) throw await this.notBrowsable(mountId);
    const volumes = live.mounted.volumes;
    const mounted = volumes.filter((v) => v.status === 'mounted');
    let volume: RestoreVolume | undefined;
    if (volumeId === undefined) {
      if (mounted.length === 0) throw new DomainError('conflict', `no volume of restore mount ${mountId} could be mounted: ${volumes.map((v) => `${describeVolume(v)}: ${v.reason ?? ''}`).join('; ') || 'the disk holds no volumes'}`);
      if (mounted.length > 1) throw new DomainError('invalid', `restore mount ${mountId} has ${mounted.length} browsable volumes (${mounted.map(describeVolume).join(', ')}): choose one with volume=`);
      volume = mounted[0];
    } else {
      volume = volumes.find((v) => v.id === volumeId);
      if (!volume) throw new DomainError('not_found', `restore mount ${mountId} has no volume ${volumeId}; its volumes: ${volumes.map(describeVolume).join(', ') || 'none'}`);
      if (volume.status !== 'mounted' || !volume.mountPath) throw new DomainError('conflict', `volume ${volume.id} of restore mount ${mountId} cannot be browsed: ${volume.status}${volume.reason ? ` (${volume.reason})` : ''}`);
    }
    return { mountId, volume, root: volume.mountPath! };
  }

  /**
   * Marks the start of an access: renews the idle timeout and keeps it from
   * firing until end() is called. `abort` is called if the mount is released meanwhile.
   */
  beginAccess(mountId: string, abort?: (reason: Error) => void): () => void {
    const live = this.live.get(mountId);
    if (!live) return () => undefined;
    live.inFlight++;
    if (abort) live.aborts.add(abort);
    this.touch(live);
    let ended = false;
    return () => {
      if (ended) return;
      ended = true;
      live.inFlight--;
      if (abort) live.aborts.delete(abort);
      if (!live.releasing) this.touch(live);
    };
  }

  /** Records a browse at most once per throttle window, so the read model's lastAccessAt/expiresAt stay close to the truth. */
  async recordBrowse(mountId: string, volume: string, path: string): Promise<void> {
    const live = this.live.get(mountId);
    if (!live) return;
    const interval = Math.min(ACCESS_EVENT_INTERVAL_MS, this.idleTimeoutMs / 4);
    if (Date.now() - live.lastAccessEvent < interval) return;
    live.lastAccessEvent = Date.now();
    await this.record(mountId, { kind: 'recordAccess', volume, path });
  }

  async record(mountId: string, command: RestoreMountCommand): Promise<{ state: RestoreMountState; position: string | null }> {
    return this.aggregates.execute(restoreMountStream(mountId), restoreMountAggregate, command);
  }

  private async takeDown(live: LiveMount, reason: ReleaseReason, detail: string | null): Promise<string | null> {
    if (live.timer) clearTimeout(live.timer);
    live.timer = null;
    const cut = new Error(`restore mount ${live.mountId} was released (${reason})`);
    for (const abort of [...live.aborts]) abort(cut);
    const report = await this.mounter.unmount(live.mountId);
    this.live.delete(live.mountId);
    for (const warning of report.warnings) this.logger.warn(`restore mount ${live.mountId}: ${warning}`);
    const details = [detail, ...report.warnings].filter((d): d is string => !!d);
    return (await this.record(live.mountId, { kind: 'release', reason, detail: details.length ? details.join('; ') : null })).position;
  }

  private touch(live: LiveMount): void {
    live.lastAccess = Date.now();
    this.schedule(live, this.idleTimeoutMs);
  }

  private schedule(live: LiveMount, delayMs: number): void {
    if (live.timer) clearTimeout(live.timer);
    live.timer = setTimeout(() => this.onIdleTimer(live), Math.max(delayMs, 10));
    live.timer.unref();
  }

  private onIdleTimer(live: LiveMount): void {
    live.timer = null;
    if (live.releasing || this.live.get(live.mountId) !== live) return;
    const idleFor = Date.now() - live.lastAccess;
    if (live.inFlight > 0 || idleFor < this.idleTimeoutMs) {
      this.schedule(live, live.inFlight > 0 ? this.idleTimeoutMs : this.idleTimeoutMs - idleFor);
      return;
    }
    this.logger.log(`releasing restore mount ${live.mountId}: idle for ${Math.round(idleFor / 1000)} s`);
    this.track(
      this.release(live.mountId, 'idle-timeout', `no access for ${Math.round(this.idleTimeoutMs / 1000)} s`).catch((e) =>
        this.logger.error(`releasing idle restore mount ${live.mountId} failed; retrying after the next idle period: ${messageOf(e)}`),
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

  /** Why a request for the files of a mount this process does not serve is refused. */
  private async notBrowsable(mountId: string): Promise<DomainError> {
    const { state } = await this.aggregates.load(restoreMountStream(mountId), restoreMountAggregate);
    switch (state.status) {
      case 'none':
        return new DomainError('not_found', `restore mount ${mountId} does not exist`);
      case 'failed':
        return new DomainError('conflict', `restore mount ${mountId} failed; mount the restore point again`);
      case 'released':
        return new DomainError('conflict', `restore mount ${mountId} was released (${state.releaseReason}); mount the restore point again`);
      default:
        if (state.target!.hubInstance !== this.instance) return new DomainError('conflict', `restore mount ${mountId} is held by another hub process`);
        return new DomainError('conflict', `restore mount ${mountId} is ${this.live.get(mountId)?.releasing ? 'being released' : 'still being mounted'}`);
    }
  }

  /** Everything about the request is checked before the first event, so a refused request changes nothing. */
  private async targetFor(restorePointId: string, diskId: string | undefined): Promise<MountTarget> {
    const view: RestorePointView = await this.points.view(restorePointId);
    if (view.status !== 'available') throw new DomainError('conflict', `restore point ${restorePointId} is being deleted`);
    const diskIds = view.disks.map((d) => d.diskId);
    let disk = diskId === undefined ? undefined : view.disks.find((d) => d.diskId === diskId);
    if (diskId === undefined) {
      if (view.disks.length !== 1) throw new DomainError('invalid', `restore point ${restorePointId} has ${view.disks.length} disks (${diskIds.join(', ')}): choose one with diskId`);
      disk = view.disks[0];
    } else if (!disk) {
      throw new DomainError('not_found', `restore point ${restorePointId} has no disk ${diskId}; its disks: ${diskIds.join(', ')}`);
    }
    const root = (await this.repositories.definition(view.repositoryId)).root;
    const chain = await this.points.chain(view.vmId, view.repositoryId);
    const relativeFiles: string[] = [];
    for (let point = pointOf(chain, restorePointId); point; point = point.parentId ? pointOf(chain, point.parentId) : undefined) {
      const file = point.disks.find((d) => d.diskId === disk!.diskId)?.file;
      if (file) relativeFiles.push(file);
    }
    if (!relativeFiles.length) relativeFiles.push(disk!.file);
    const chainFiles: string[] = [];
    for (const relative of relativeFiles) {
      try {
        chainFiles.push(await fs.realpath(join(root, relative)));
      } catch (error) {
        throw new DomainError('conflict', `restore point ${restorePointId} disk ${disk!.diskId} cannot be mounted: ${relative} is missing in repository ${view.repositoryId} (${messageOf(error)})`);
      }
    }
    return {
      mountId: randomUUID(),
      restorePointId,
      vmId: view.vmId,
      repositoryId: view.repositoryId,
      diskId: disk!.diskId,
      file: chainFiles[0],
      chainFiles,
      hubInstance: this.instance,
      idleTimeoutSeconds: Math.round(this.idleTimeoutMs / 1000),
    };
  }

  /** For FilesInUse: a restore-point file that a mount (of this or any hub on this database) reads must not change. */
  private async blocker(files: string[]): Promise<string | null> {
    const wanted = new Set(files);
    for (const live of this.live.values()) {
      const file = live.files.find((f) => wanted.has(f));
      if (file) return `${file} is read by restore mount ${live.mountId} (restore point ${live.restorePointId}, disk ${live.diskId}); unmount it first`;
    }
    const rows: { mount_id: string; restore_point_id: string; disk_id: string }[] = await this.dataSource.query(
      `SELECT mount_id, restore_point_id, disk_id FROM rm_restore_mounts WHERE status IN ('mounting', 'ready') AND chain_files && $1::text[] LIMIT 1`,
      [files],
    );
    return rows.length ? `restore mount ${rows[0].mount_id} (restore point ${rows[0].restore_point_id}, disk ${rows[0].disk_id}) reads these files; unmount it first` : null;
  }

  private track(work: Promise<unknown>): void {
    this.pending.add(work);
    void work.finally(() => this.pending.delete(work));
  }
}
