import { Inject, Injectable } from '@nestjs/common';
import { HUB_CONFIG, HubConfig } from '../config/hub-config';
import { DomainError } from '../eventing/domain-error';
import { MountedRestorePoint, RestoreVolume } from './mounting';
import { MountTarget } from './restore-mount.events';

/** Browsing is recorded as RestoreMountAccessed at most this often per mount (and at most 4 times per idle period). */
const ACCESS_EVENT_INTERVAL_MS = 60_000;

/** What this hub process holds for one of its mounts. */
export interface LiveMount {
  target: MountTarget;
  mounted: MountedRestorePoint | null;
  /** The event the workflow's next step on this mount is caused by, and the mount's story. */
  cause: { eventId: string; correlationId: string };
  lastAccess: number;
  lastAccessEvent: number;
  timer: NodeJS.Timeout | null;
  /** Downloads and listings under way; the idle timeout never releases a mount in use. */
  inFlight: number;
  /** Aborts every download under way, so a release does not wait for slow clients. */
  aborts: Set<(reason: Error) => void>;
  releasing: Promise<void> | null;
  /** A release was recorded while the mount was still being made: take it down once mounting ends. */
  releaseRecorded: boolean;
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

function describeVolume(v: RestoreVolume): string {
  return `${v.id} (${v.fsType ?? 'unknown'}, ${v.status})`;
}

/**
 * The restore mounts this hub process holds, from the moment they are requested until they
 * are taken down: the workflow adds and removes them, downloads mark their accesses, and
 * answers about a mount use the live expiry instead of the read model's throttled one.
 */
@Injectable()
export class LiveMounts {
  readonly idleTimeoutMs: number;
  private readonly mounts = new Map<string, LiveMount>();
  private onIdle: (live: LiveMount) => void = () => undefined;

  constructor(@Inject(HUB_CONFIG) config: HubConfig) {
    this.idleTimeoutMs = config.restoreIdleMs;
  }

  /** The workflow releases a mount that stayed idle for the whole timeout. */
  whenIdle(handler: (live: LiveMount) => void): void {
    this.onIdle = handler;
  }

  hold(target: MountTarget, cause: LiveMount['cause']): LiveMount {
    const live: LiveMount = {
      target,
      mounted: null,
      cause,
      lastAccess: Date.now(),
      lastAccessEvent: Date.now(),
      timer: null,
      inFlight: 0,
      aborts: new Set(),
      releasing: null,
      releaseRecorded: false,
    };
    this.mounts.set(target.mountId, live);
    return live;
  }

  get(mountId: string): LiveMount | undefined {
    return this.mounts.get(mountId);
  }

  all(): LiveMount[] {
    return [...this.mounts.values()];
  }

  holds(mountId: string): boolean {
    return this.mounts.has(mountId);
  }

  drop(live: LiveMount): void {
    if (live.timer) clearTimeout(live.timer);
    live.timer = null;
    if (this.mounts.get(live.target.mountId) === live) this.mounts.delete(live.target.mountId);
  }

  liveAccess(mountId: string): LiveAccess | null {
    const live = this.mounts.get(mountId);
    if (!live?.mounted || live.releasing) return null;
    return { lastAccessAt: new Date(live.lastAccess), expiresAt: new Date(live.lastAccess + this.idleTimeoutMs) };
  }

  /** A mount this process serves right now, or null (then the events say why not). */
  browsable(mountId: string): LiveMount | null {
    const live = this.mounts.get(mountId);
    return live?.mounted && !live.releasing ? live : null;
  }

  /**
   * The volume to browse: `volumeId`, or the only mounted volume when none
   * is named. 404 for an unknown volume, 409 for one that cannot be browsed;
   * 400 when a choice is needed.
   */
  volume(live: LiveMount, volumeId: string | undefined): BrowsableVolume {
    const mountId = live.target.mountId;
    const volumes = live.mounted!.volumes;
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
   * firing until the returned function is called. `abort` is called if the mount is released meanwhile.
   */
  beginAccess(mountId: string, abort?: (reason: Error) => void): () => void {
    const live = this.mounts.get(mountId);
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

  /** Whether a browse is due to be recorded: at most once per throttle window, so the read model's expiry stays close to the truth. */
  browseDue(mountId: string): boolean {
    const live = this.mounts.get(mountId);
    if (!live) return false;
    const interval = Math.min(ACCESS_EVENT_INTERVAL_MS, this.idleTimeoutMs / 4);
    if (Date.now() - live.lastAccessEvent < interval) return false;
    live.lastAccessEvent = Date.now();
    return true;
  }

  /** Cuts off every download of the mount. */
  abortAccesses(live: LiveMount, reason: Error): void {
    for (const abort of [...live.aborts]) abort(reason);
  }

  /** A held mount that reads one of these files, as the refusal of a delete or merge says it. */
  reading(files: string[]): string | null {
    const wanted = new Set(files);
    for (const live of this.mounts.values()) {
      const file = live.target.chainFiles.find((f) => wanted.has(f));
      if (file) return `${file} is read by restore mount ${live.target.mountId} (restore point ${live.target.restorePointId}, disk ${live.target.diskId}); unmount it first`;
    }
    return null;
  }

  touch(live: LiveMount): void {
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
    if (live.releasing || this.mounts.get(live.target.mountId) !== live) return;
    const idleFor = Date.now() - live.lastAccess;
    if (live.inFlight > 0 || idleFor < this.idleTimeoutMs) {
      this.schedule(live, live.inFlight > 0 ? this.idleTimeoutMs : this.idleTimeoutMs - idleFor);
      return;
    }
    this.onIdle(live);
  }
}
