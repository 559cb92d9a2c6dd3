import { promises as fs } from 'node:fs';
import { isAbsolute, resolve } from 'node:path';
import { startChainExport } from './chain-export';
import { ExitStatus, HelperChild } from './helper-processes';
import { shareMount } from './host-mounts';
import { RestoreMountError } from './mount-errors';
import { startNbdfuse } from './nbdfuse-file';
import { readDiskLayout } from './partition-table';
import { startReadOnlyExport } from './qemu-nbd-export';
import type { MountedRestorePoint } from './restore-volume';
import { mountVolume } from './volume-mounter';
import { isWithin, workDirLayout } from './work-dir-layout';
import { KnownResources, leftoverWorkDirs, teardownWorkDir } from './work-dir-teardown';

export interface MountRequest {
  /** The caller's id for this mount; unmount() takes it. */
  mountId: string;
  /** A qcow2 restore point; its backing chain reads through. Never written to. */
  imageFile: string;
  /** Created if missing, must be empty; e.g. <dataDir>/restore/<mountId>. Everything the mount creates lives here. */
  workDir: string;
}

export interface HelperExitNotice {
  mountId: string;
  program: string;
  status: ExitStatus;
  logTail: string;
}

export interface RestorePointMounterOptions {
  /** How long qemu-nbd and nbdfuse may take to serve. */
  helperStartTimeoutMs?: number;
  /** How long a helper gets to exit by itself, then after SIGTERM, before SIGKILL. */
  stopGraceMs?: number;
  /** qemu-nbd or nbdfuse died while mounted: reads now fail, and the hub should unmount. */
  onHelperExit?: (notice: HelperExitNotice) => void;
}

export interface UnmountReport {
  mountId: string;
  /** False when nothing was mounted under this id (unmount is idempotent). */
  wasMounted: boolean;
  warnings: string[];
}

export interface LeftoverCleanupReport {
  /** Work dirs that were taken down and removed. */
  removed: string[];
  warnings: string[];
  failures: Array<{ workDir: string; error: string }>;
}

interface ActiveMount {
  info: MountedRestorePoint;
  known: KnownResources;
}

async function usableImage(imageFile: string): Promise<string> {
  try {
    const real = await fs.realpath(imageFile);
    if (!(await fs.stat(real)).isFile()) throw new Error('not a regular file');
    return real;
  } catch (error) {
    throw new RestoreMountError(`restore point image ${imageFile} cannot be used: ${messageOf(error)}`, 'IMAGE_NOT_FOUND');
  }
}

function messageOf(error: unknown): string {
  return error instanceof Error ? error.message : String(error);
}

/**
 * Mounts qcow2 restore points read-only for file-level restore:
 * qcow2 -> a read-only NBD export on a Unix socket (the hub's own, chain-export.ts, or qemu-nbd for layouts
 * it does not serve) -> nbdfuse (one plain file)
 * -> a read-only loop device per partition (by offset; this kernel cannot
 * parse partition tables on loop devices) -> a kernel or FUSE filesystem
 * mounted read-only. Plain process-level service; the hub wraps it.
 */
export class RestorePointMounter {
  private readonly mounts = new Map<string, ActiveMount>();
  /** Work dirs being set up or torn down right now, which leftover cleanup must not touch. */
  private readonly busyWorkDirs = new Set<string>();
  private readonly queues = new Map<string, Promise<unknown>>();
  private readonly startTimeoutMs: number;
  private readonly graceMs: number;

  constructor(private readonly options: RestorePointMounterOptions = {}) {
    this.startTimeoutMs = options.helperStartTimeoutMs ?? 15_000;
    this.graceMs = options.stopGraceMs ?? 5_000;
  }

  /** Resolves once every volume has been tried: mounted ones have a mountPath, the others a status and reason. */
  mount(request: MountRequest): Promise<MountedRestorePoint> {
    return this.serialised(request.mountId, () => this.doMount(request));
  }

  /** Idempotent; also finishes a teardown that failed half-way before. */
  unmount(mountId: string): Promise<UnmountReport> {
    return this.serialised(mountId, () => this.doUnmount(mountId));
  }

  get(mountId: string): MountedRestorePoint | undefined {
    return this.mounts.get(mountId)?.info;
  }

  list(): MountedRestorePoint[] {
    return [...this.mounts.values()].map((m) => m.info);
  }

  /**
   * For hub start: every directory under restoreRoot that no live mount of
   * this instance owns is a leftover of an earlier run. Its mounts, loop
   * devices and helper processes are found by path and taken down, then the
   * directory is removed. One failing work dir does not stop the others.
   */
  async cleanupLeftovers(restoreRoot: string): Promise<LeftoverCleanupReport> {
    const report: LeftoverCleanupReport = { removed: [], warnings: [], failures: [] };
    let root: string;
    try {
      root = await fs.realpath(restoreRoot);
    } catch {
      return report;
    }
    const owned = [...this.busyWorkDirs, ...[...this.mounts.values()].map((m) => m.info.workDir)];
    for (const workDir of await leftoverWorkDirs(root)) {
      if (owned.some((dir) => isWithin(workDir, dir) || isWithin(dir, workDir))) continue;
      try {
        report.warnings.push(...(await teardownWorkDir(workDir, {}, { graceMs: this.graceMs })));
        report.removed.push(workDir);
      } catch (error) {
        report.failures.push({ workDir, error: messageOf(error) });
      }
    }
    return report;
  }

  private async doMount(request: MountRequest): Promise<MountedRestorePoint> {
    const { mountId } = request;
    if (!mountId) throw new RestoreMountError('mountId must not be empty', 'INVALID_REQUEST');
    if (!isAbsolute(request.workDir)) throw new RestoreMountError(`workDir must be an absolute path: ${request.workDir}`, 'INVALID_REQUEST');
    if (this.mounts.has(mountId)) throw new RestoreMountError(`restore mount ${mountId} already exists`, 'MOUNT_EXISTS');
    const imageFile = await usableImage(request.imageFile);

    // Claimed before the directory exists, so neither a concurrent mount nor cleanupLeftovers takes it meanwhile.
    const claimed: string[] = [];
    try {
      const requested = resolve(request.workDir);
      this.claimWorkDir(requested, claimed);
      await fs.mkdir(requested, { recursive: true });
      // /proc/mounts and losetup report canonical paths; everything is matched against those.
      const workDir = await fs.realpath(requested);
      if (workDir !== requested) this.claimWorkDir(workDir, claimed);
      if ((await fs.readdir(workDir)).length) {
        throw new RestoreMountError(`work dir ${workDir} is not empty (a leftover? cleanupLeftovers removes those)`, 'WORKDIR_IN_USE');
      }
      return await this.assemble(mountId, imageFile, workDir);
    } finally {
      for (const dir of claimed) this.busyWorkDirs.delete(dir);
    }
  }

  private claimWorkDir(dir: string, claimed: string[]): void {
    const taken = [...this.busyWorkDirs, ...this.list().map((m) => m.workDir)].some((other) => isWithin(other, dir) || isWithin(dir, other));
    if (taken) throw new RestoreMountError(`work dir ${dir} belongs to another restore mount`, 'WORKDIR_IN_USE');
    this.busyWorkDirs.add(dir);
    claimed.push(dir);
  }

  /** Builds the stack bottom-up; on any failure takes down whatever part of it exists. */
  private async assemble(mountId: string, imageFile: string, workDir: string): Promise<MountedRestorePoint> {
    const known: KnownResources & { loopDevices: string[] } = { loopDevices: [] };
    try {
      await shareMount(workDir);
      known.chainExport = (await startChainExport(imageFile, workDir)) ?? undefined;
      if (!known.chainExport) known.qemuNbd = await startReadOnlyExport(imageFile, workDir, this.startTimeoutMs);
      const nbdfuse = (known.nbdfuse = await startNbdfuse(workDir, this.startTimeoutMs));
      const diskFile = workDirLayout.diskFile(workDir);
      const layout = await readDiskLayout(diskFile);
      await fs.mkdir(workDirLayout.volumesDir(workDir));
      const volumes = [];
      for (const region of layout.regions) {
        const mounted = await mountVolume(diskFile, region, workDirLayout.volumeDir(workDir, region.id));
        if (mounted.loopDevice) known.loopDevices.push(mounted.loopDevice);
        volumes.push(mounted.volume);
      }
      const info: MountedRestorePoint = { mountId, imageFile, workDir, partitionTable: layout.table, diskSize: layout.diskSize, volumes, mountedAt: new Date().toISOString() };
      this.mounts.set(mountId, { info, known });
      if (known.qemuNbd) this.watchHelper(mountId, known.qemuNbd);
      this.watchHelper(mountId, nbdfuse);
      return info;
    } catch (error) {
      await teardownWorkDir(workDir, known, { graceMs: this.graceMs }).catch(() => undefined);
      throw error;
    }
  }

  private async doUnmount(mountId: string): Promise<UnmountReport> {
    const active = this.mounts.get(mountId);
    if (!active) return { mountId, wasMounted: false, warnings: [] };
    const { workDir } = active.info;
    this.busyWorkDirs.add(workDir);
    try {
      const warnings = await teardownWorkDir(workDir, active.known, { graceMs: this.graceMs });
      this.mounts.delete(mountId);
      return { mountId, wasMounted: true, warnings };
    } finally {
      this.busyWorkDirs.delete(workDir);
    }
  }

  private watchHelper(mountId: string, helper: HelperChild): void {
    void helper.exited.then(async (status) => {
      if (helper.stopping || !this.options.onHelperExit) return;
      this.options.onHelperExit({ mountId, program: helper.program, status, logTail: await helper.logTail() });
    });
  }

  /** One operation per mount id at a time, so an unmount never races the mount it undoes. */
  private serialised<T>(mountId: string, operation: () => Promise<T>): Promise<T> {
    const previous = this.queues.get(mountId) ?? Promise.resolve();
    const next = previous.catch(() => undefined).then(operation);
    const tail = next.catch(() => undefined);
    this.queues.set(mountId, tail);
    void tail.then(() => {
      if (this.queues.get(mountId) === tail) this.queues.delete(mountId);
    });
    return next;
  }
}
