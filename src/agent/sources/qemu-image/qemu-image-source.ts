import { randomUUID } from 'node:crypto';
import { mkdtemp, readdir, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { killQemuNbdServingUnder } from '../../../process/socket-servers';
import { mapAtOnce } from '../../../process';
import { MAX_SOCKET_PATH } from '../../../process/socket-path';
import {
  bitmapName,
  checkChain as checkChainOf,
  decideBackup,
  DEFAULT_BITMAP_PREFIX,
  newBitmapAction,
  planCompletion,
  type DiskBitmapState,
} from './change-tracking';
import { DiskInspectionError, InvalidRequestError, QemuImgError, qemuSummary, SnapshotError, SnapshotOpenError, UnknownVmError, VmRunningError, isLockMessage } from './errors';
import { ID_PATTERN, loadInventoryFile, parseInventory } from './inventory';
import { addBitmap, imageSummary, mergeBitmap, removeBitmap, type ImageSummary, type QemuImgRunOptions } from '../../../qemu/qemu-img';
import { buildSocketExportArgs } from '../../../qemu/qemu-nbd-args';
import { launchQemuNbd, QemuNbdStartError } from '../../../qemu/qemu-nbd-launcher';
import { closeAll, QemuNbdSnapshot } from './snapshot';
import {
  SUPPORTED_FORMATS,
  type ChainCheck,
  type CompleteBackupRequest,
  type CompletedBackup,
  type CompletedDisk,
  type DiskFormat,
  type DiskProblem,
  type Inventory,
  type InventoryDisk,
  type InventoryScan,
  type InventoryVm,
  type OpenSnapshotOptions,
  type PrepareBackupRequest,
  type PreparedBackup,
  type QemuImageSourceOptions,
  type SourceDisk,
  type SourceVm,
} from './types';

/** Every snapshot directory starts with this; cleanupLeftovers() recognises a crashed agent's processes by it. */
export const SNAPSHOT_DIR_PREFIX = 'sendense-qemu-snap-';
export const EXPORT_NAME = 'disk';
const INSPECT_CONCURRENCY = 8;

/**
 * Source driver for VMs whose disks are QEMU images (qcow2 or raw) on this
 * host, backed up while the VM is powered off. See README.md for the
 * dirty-bitmap lifecycle.
 */
export class QemuImageSource {
  private readonly qemuImg: QemuImgRunOptions;
  private readonly prefix: string;
  private readonly runDir: string;
  private readonly snapshots = new Map<string, QemuNbdSnapshot>();
  private readonly queues = new Map<string, Promise<unknown>>();

  constructor(private readonly opts: QemuImageSourceOptions) {
    if (opts.inventoryFile === undefined && opts.inventory === undefined) throw new Error('QemuImageSource needs inventoryFile or inventory');
    this.qemuImg = { binary: opts.qemuImgBinary, timeoutMs: opts.commandTimeoutMs ?? 60_000 };
    this.prefix = opts.bitmapPrefix ?? DEFAULT_BITMAP_PREFIX;
    this.runDir = opts.runDir ?? tmpdir();
  }

  // ---------------------------------------------------------------- inventory

  /** The validated inventory document (no image is opened). Throws InventoryError listing every problem. */
  async readInventory(): Promise<Inventory> {
    return this.opts.inventoryFile !== undefined ? loadInventoryFile(this.opts.inventoryFile) : parseInventory(this.opts.inventory);
  }

  /**
   * Inspects every disk (`qemu-img info -U`, so it also works while VMs run):
   * format, virtual size. A VM with any disk that cannot be backed up is left
   * out of `vms` and its disks' problems are listed.
   */
  async scanInventory(): Promise<InventoryScan> {
    const inventory = await this.readInventory();
    const jobs = inventory.vms.flatMap((vm) => vm.disks.map((disk) => ({ vm, disk })));
    const results = await mapAtOnce(jobs, INSPECT_CONCURRENCY, async ({ vm, disk }) => {
      try {
        return { vm, disk, source: await this.inspectDisk(disk) };
      } catch (error) {
        return { vm, disk, problem: { vmId: vm.id, diskId: disk.id, path: disk.path, message: (error as Error).message } as DiskProblem };
      }
    });
    const problems = results.flatMap((r) => (r.problem ? [r.problem] : []));
    const vms = inventory.vms
      .filter((vm) => !problems.some((p) => p.vmId === vm.id))
      .map((vm) => ({ id: vm.id, name: vm.name, disks: vm.disks.map((d) => results.find((r) => r.disk === d)?.source as SourceDisk) }));
    return { vms, problems };
  }

  /** Every VM with its disks; throws DiskInspectionError naming every disk that cannot be backed up. */
  async listVms(): Promise<SourceVm[]> {
    const scan = await this.scanInventory();
    if (scan.problems.length > 0) throw new DiskInspectionError(scan.problems);
    return scan.vms;
  }

  async getVm(vmId: string): Promise<SourceVm> {
    const vm = await this.inventoryVm(vmId);
    const problems: DiskProblem[] = [];
    const disks: SourceDisk[] = [];
    for (const disk of vm.disks) {
      try {
        disks.push(await this.inspectDisk(disk));
      } catch (error) {
        problems.push({ vmId, diskId: disk.id, path: disk.path, message: (error as Error).message });
      }
    }
    if (problems.length > 0) throw new DiskInspectionError(problems);
    return { id: vm.id, name: vm.name, disks };
  }

  // ----------------------------------------------------------------- snapshot

  /**
   * Opens every disk of the VM read-only, each through its own qemu-nbd on a
   * Unix socket in a private directory; all are up before this resolves. If
   * any disk cannot be opened, the others are closed again and it throws
   * (VmRunningError when an image is locked by a writer). The VM is resolved
   * from the inventory by id.
   */
  async openSnapshot(vm: SourceVm | string, options: OpenSnapshotOptions = {}): Promise<QemuNbdSnapshot> {
    const vmId = typeof vm === 'string' ? vm : vm.id;
    return this.exclusive(vmId, async () => {
      this.assertNoSnapshot(vmId, 'open another snapshot of');
      const source = await this.getVm(vmId);
      const bitmaps = options.bitmaps ?? {};
      for (const [diskId, bitmap] of Object.entries(bitmaps)) {
        const disk = source.disks.find((d) => d.id === diskId);
        if (!disk) throw new Error(`openSnapshot: VM ${vmId} has no disk ${diskId} (bitmaps names it)`);
        if (bitmap !== undefined && disk.format !== 'qcow2') throw new Error(`openSnapshot: disk ${diskId} of VM ${vmId} is ${disk.format} and has no dirty bitmaps`);
        if (bitmap !== undefined && (bitmap === '' || bitmap.length > 1023)) throw new Error(`openSnapshot: bad bitmap name ${JSON.stringify(bitmap)} for disk ${diskId}`);
      }

      const dir = await mkdtemp(join(this.runDir, SNAPSHOT_DIR_PREFIX));
      const sockets = source.disks.map((_, i) => join(dir, `d${i}.sock`));
      if (sockets.some((s) => Buffer.byteLength(s) > MAX_SOCKET_PATH)) {
        await rm(dir, { recursive: true, force: true });
        throw new Error(`openSnapshot: runDir ${this.runDir} is too long for Unix socket paths (${sockets[0]} exceeds ${MAX_SOCKET_PATH} bytes)`);
      }
      const started = await Promise.allSettled(
        source.disks.map(async (disk, i) => {
          const pidFile = join(dir, `d${i}.pid`);
          const logFile = join(dir, `d${i}.log`);
          const args = buildSocketExportArgs({ file: disk.path, format: disk.format, socket: sockets[i], exportName: EXPORT_NAME, shared: this.opts.sharedClients ?? 4, bitmap: bitmaps[disk.id] }, pidFile);
          // Not detached: a snapshot's exports die with the agent (its read locks would keep the VM from starting).
          const handle = await launchQemuNbd({ binary: this.opts.qemuNbdBinary, args, pidFile, listen: { socket: sockets[i] }, logFile, detached: false }, { readyTimeoutMs: this.opts.readyTimeoutMs ?? 10_000 });
          return { handle, logFile };
        }),
      );
      const children = started.flatMap((r) => (r.status === 'fulfilled' ? [r.value] : []));
      const stopTimeoutMs = this.opts.stopTimeoutMs ?? 10_000;
      const failures = started.flatMap((r, i) => (r.status === 'rejected' ? [{ disk: source.disks[i], error: r.reason as Error }] : []));
      if (failures.length > 0) {
        await closeAll(children, dir, stopTimeoutMs);
        const locked = failures.find((f) => f.error instanceof QemuNbdStartError && isLockMessage(f.error.stderr));
        if (locked) throw new VmRunningError(vmId, locked.disk.id, locked.disk.path, qemuSummary((locked.error as QemuNbdStartError).stderr));
        throw new SnapshotError(
          vmId,
          failures.map((f) => ({ diskId: f.disk.id, path: f.disk.path, message: f.error instanceof QemuNbdStartError ? qemuSummary(f.error.stderr) || f.error.message : f.error.message })),
        );
      }

      try {
        // Sizes read while our read-only opens hold the images: nobody can resize them now.
        const sizes = await Promise.all(source.disks.map((d) => imageSummary(d.path, { ...this.qemuImg, format: d.format, shareLocks: true }).then((i) => i.virtualSize)));
        const snapshot = new QemuNbdSnapshot(
          randomUUID(),
          vmId,
          source.disks.map((disk, i) => {
            const bitmap = bitmaps[disk.id];
            return {
              diskId: disk.id,
              uri: `nbd+unix:///${EXPORT_NAME}?socket=${sockets[i]}`,
              socketPath: sockets[i],
              exportName: EXPORT_NAME,
              format: disk.format,
              virtualSize: sizes[i],
              ...(bitmap !== undefined ? { bitmap, dirtyBitmapContext: `qemu:dirty-bitmap:${bitmap}` } : {}),
            };
          }),
          dir,
          children,
          stopTimeoutMs,
          (s) => {
            if (this.snapshots.get(s.vmId) === s) this.snapshots.delete(s.vmId);
          },
        );
        this.snapshots.set(vmId, snapshot);
        return snapshot;
      } catch (error) {
        await closeAll(children, dir, stopTimeoutMs);
        throw error;
      }
    });
  }

  /** Snapshots opened by this instance and not closed yet. */
  openSnapshots(): QemuNbdSnapshot[] {
    return [...this.snapshots.values()];
  }

  /** Closes every open snapshot (agent shutdown). */
  async closeAll(): Promise<void> {
    const results = await Promise.allSettled(this.openSnapshots().map((s) => s.close()));
    const failed = results.find((r): r is PromiseRejectedResult => r.status === 'rejected');
    if (failed) throw failed.reason;
  }

  /**
   * At agent start-up: a previous agent killed with SIGKILL leaves its
   * qemu-nbd (read-only, harmless to the images, but holding locks that keep
   * the VM from starting) and snapshot directories in runDir. Stops those
   * processes and removes those directories. Only for one agent per runDir.
   */
  async cleanupLeftovers(): Promise<{ killed: number[]; removedDirs: string[] }> {
    const ours = new Set(this.openSnapshots().map((s) => s.dir));
    const marker = join(this.runDir, SNAPSHOT_DIR_PREFIX);
    const killed = await killQemuNbdServingUnder(marker, (socket) => [...ours].some((d) => socket.startsWith(`${d}/`)), this.opts.qemuNbdBinary);
    const removedDirs: string[] = [];
    for (const entry of await readdir(this.runDir)) {
      const dir = join(this.runDir, entry);
      if (entry.startsWith(SNAPSHOT_DIR_PREFIX) && !ours.has(dir)) {
        await rm(dir, { recursive: true, force: true });
        removedDirs.push(dir);
      }
    }
    return { killed, removedDirs };
  }

  // ----------------------------------------------------------- change tracking

  /**
   * Before a backup (no snapshot open): decides full vs incremental for the
   * whole VM from the bitmaps on disk, then starts `<prefix><newPointId>` on
   * every qcow2 disk. Throws VmRunningError if an image is held by a writer.
   */
  async prepareBackup(vmId: string, req: PrepareBackupRequest): Promise<PreparedBackup> {
    checkPointIds(req.newPointId, req.sincePointId);
    return this.exclusive(vmId, async () => {
      this.assertNoSnapshot(vmId, 'prepare a backup of');
      const vm = await this.inventoryVm(vmId);
      const states = await this.readBitmapStates(vm);
      const decision = decideBackup(states, req, this.prefix);

      const added: Array<{ disk: InventoryDisk; name: string }> = [];
      const name = bitmapName(this.prefix, req.newPointId);
      try {
        for (const state of states) {
          const disk = vm.disks.find((d) => d.id === state.diskId) as InventoryDisk;
          const action = newBitmapAction(state, req.newPointId, this.prefix);
          if (action === 'replace') await removeBitmap(disk.path, name, this.qemuImg);
          if (action === 'add' || action === 'replace') {
            await addBitmap(disk.path, name, { ...this.qemuImg, granularity: this.opts.bitmapGranularity ?? 65536 });
            added.push({ disk, name });
          }
        }
      } catch (error) {
        for (const a of added) await removeBitmap(a.disk.path, a.name, this.qemuImg).catch(() => undefined);
        throw this.translate(error, vmId, vm.disks.find((d) => (error as QemuImgError).args?.includes(d.path)));
      }
      const bitmaps: Record<string, string> = {};
      for (const d of decision.disks) if (d.mode === 'incremental' && d.bitmap) bitmaps[d.diskId] = d.bitmap;
      return {
        vmId,
        newPointId: req.newPointId,
        sincePointId: req.sincePointId,
        mode: decision.mode,
        ...(decision.reason ? { reason: decision.reason } : {}),
        disks: decision.disks,
        bitmaps,
      };
    });
  }

  /**
   * After a backup, once its snapshot is closed. success: keep only the new
   * bitmap. failure/cancel: merge the new bitmap into the still-current base
   * and remove it. Idempotent. A disk whose image is locked again (the VM was
   * started) is reported `deferred` and left as it is, which is safe (README).
   */
  async completeBackup(vmId: string, req: CompleteBackupRequest): Promise<CompletedBackup> {
    checkPointIds(req.newPointId, req.sincePointId);
    return this.exclusive(vmId, async () => {
      this.assertNoSnapshot(vmId, 'complete a backup of');
      const vm = await this.inventoryVm(vmId);
      const disks: CompletedDisk[] = [];
      for (const disk of vm.disks) {
        const result: CompletedDisk = { diskId: disk.id, removed: [], warnings: [] };
        disks.push(result);
        try {
          const info = await imageSummary(disk.path, { ...this.qemuImg, format: disk.format, shareLocks: false });
          if (info.format !== 'qcow2') continue;
          const plan = planCompletion({ diskId: disk.id, format: 'qcow2', bitmaps: info.bitmaps }, req, this.prefix);
          result.warnings.push(...plan.warnings);
          if (plan.merge) {
            try {
              await mergeBitmap(disk.path, plan.merge.from, plan.merge.into, this.qemuImg);
              result.merged = plan.merge;
            } catch (error) {
              if (error instanceof QemuImgError && error.locked) throw error;
              // Keep the new bitmap: it is a harmless straggler that the next successful backup removes.
              result.warnings.push(`cannot merge ${plan.merge.from} into ${plan.merge.into} on ${disk.id}: ${(error as Error).message}`);
              continue;
            }
          }
          for (const name of plan.remove) {
            await removeBitmap(disk.path, name, this.qemuImg);
            result.removed.push(name);
          }
        } catch (error) {
          if (error instanceof QemuImgError && error.locked) {
            result.deferred = `image is locked by another process (${qemuSummary(error.stderr)}); bitmaps left as they are`;
          } else {
            result.warnings.push((error as Error).message);
          }
        }
      }
      return { vmId, success: req.success, complete: disks.every((d) => !d.deferred), disks };
    });
  }

  /** Can the VM's chain continue with an incremental since `sincePointId`? Per disk, with reasons. */
  async checkChain(vmId: string, sincePointId: string): Promise<ChainCheck> {
    checkPointIds(sincePointId, null);
    return this.exclusive(vmId, async () => checkChainOf(await this.readBitmapStates(await this.inventoryVm(vmId)), sincePointId, this.prefix));
  }

  /** null when an incremental since `sincePointId` is possible; otherwise why not (what the hub records as ChainBroken). */
  async brokenChainReason(vmId: string, sincePointId: string): Promise<string | null> {
    const check = await this.checkChain(vmId, sincePointId);
    return check.ok ? null : (check.reason as string);
  }

  /** Bitmaps on each disk (read without -U), for diagnostics and tests. */
  async bitmaps(vmId: string): Promise<DiskBitmapState[]> {
    return this.exclusive(vmId, async () => this.readBitmapStates(await this.inventoryVm(vmId)));
  }

  // ------------------------------------------------------------------ helpers

  private async inventoryVm(vmId: string): Promise<InventoryVm> {
    const vm = (await this.readInventory()).vms.find((v) => v.id === vmId);
    if (!vm) throw new UnknownVmError(vmId);
    return vm;
  }

  private async inspectDisk(disk: InventoryDisk): Promise<SourceDisk> {
    let info: ImageSummary;
    try {
      info = await imageSummary(disk.path, { ...this.qemuImg, format: disk.format, shareLocks: true });
    } catch (error) {
      throw new Error(error instanceof QemuImgError ? qemuSummary(error.stderr) || error.message : (error as Error).message);
    }
    const format = checkFormat(info);
    return {
      id: disk.id,
      path: disk.path,
      format,
      virtualSize: info.virtualSize,
      changeTracking: format === 'qcow2' ? 'dirty-bitmap' : 'none',
      ...(info.backingFile ? { backingFile: info.backingFile } : {}),
    };
  }

  /** `qemu-img info` WITHOUT -U on every disk: fails (VmRunningError) while a writer holds an image, so in-use flags mean a dead writer. */
  private async readBitmapStates(vm: InventoryVm): Promise<DiskBitmapState[]> {
    const states: DiskBitmapState[] = [];
    const problems: DiskProblem[] = [];
    for (const disk of vm.disks) {
      try {
        const info = await imageSummary(disk.path, { ...this.qemuImg, format: disk.format, shareLocks: false });
        states.push({ diskId: disk.id, format: checkFormat(info), bitmaps: info.bitmaps });
      } catch (error) {
        if (error instanceof QemuImgError && error.locked) throw this.translate(error, vm.id, disk);
        problems.push({ vmId: vm.id, diskId: disk.id, path: disk.path, message: error instanceof QemuImgError ? qemuSummary(error.stderr) : (error as Error).message });
      }
    }
    if (problems.length > 0) throw new DiskInspectionError(problems);
    return states;
  }

  private translate(error: unknown, vmId: string, disk: InventoryDisk | undefined): unknown {
    if (error instanceof QemuImgError && error.locked && disk) return new VmRunningError(vmId, disk.id, disk.path, qemuSummary(error.stderr));
    return error;
  }

  private assertNoSnapshot(vmId: string, what: string): void {
    const open = this.snapshots.get(vmId);
    if (open) throw new SnapshotOpenError(vmId, open.snapshotId, what);
  }

  /** Operations on one VM run one after another (bitmap changes must not interleave); different VMs run in parallel. */
  private exclusive<T>(vmId: string, fn: () => Promise<T>): Promise<T> {
    const previous = this.queues.get(vmId) ?? Promise.resolve();
    const next = previous.then(fn, fn);
    const settled = next.catch(() => undefined);
    this.queues.set(vmId, settled);
    void settled.then(() => {
      if (this.queues.get(vmId) === settled) this.queues.delete(vmId);
    });
    return next;
  }
}

function checkFormat(info: ImageSummary): DiskFormat {
  if (!SUPPORTED_FORMATS.includes(info.format as DiskFormat)) {
    throw new Error(`format ${info.format} is not supported (only ${SUPPORTED_FORMATS.join(' and ')}; convert it with qemu-img convert)`);
  }
  if (info.encrypted) throw new Error(`encrypted ${info.format} images are not supported`);
  return info.format as DiskFormat;
}

function checkPointIds(newPointId: string, sincePointId: string | null): void {
  const problems: string[] = [];
  if (typeof newPointId !== 'string' || !ID_PATTERN.test(newPointId)) problems.push(`restore point id ${JSON.stringify(newPointId)} must match ${ID_PATTERN.source}`);
  if (sincePointId !== null && (typeof sincePointId !== 'string' || !ID_PATTERN.test(sincePointId))) problems.push(`restore point id ${JSON.stringify(sincePointId)} must match ${ID_PATTERN.source}`);
  if (sincePointId !== null && sincePointId === newPointId) problems.push(`the new restore point ${newPointId} cannot be its own base`);
  if (problems.length > 0) throw new InvalidRequestError(problems);
}
