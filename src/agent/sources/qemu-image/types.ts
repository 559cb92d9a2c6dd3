import type { CopySource } from '../../../data-mover';
import type { DiskLeftOut, SinceDisk } from '../../../wire/backup-protocol';

/** Image formats this driver accepts. Everything else (vmdk, vdi, vhdx, luks, ...) is refused. */
export type DiskFormat = 'qcow2' | 'raw';
export const SUPPORTED_FORMATS: readonly DiskFormat[] = ['qcow2', 'raw'];

/** qcow2 keeps persistent dirty bitmaps; raw has nowhere to keep them, so raw disks are always copied whole. */
export type ChangeTracking = 'dirty-bitmap' | 'cbt' | 'none';

/** One disk as the operator wrote it in the inventory file. */
export interface InventoryDisk {
  id: string;
  /** Absolute path of the image file. */
  path: string;
  /** Optional: pins the format instead of letting qemu probe it (recommended for raw images, see README). */
  format?: DiskFormat;
}

export interface InventoryVm {
  id: string;
  name: string;
  disks: InventoryDisk[];
}

export interface Inventory {
  vms: InventoryVm[];
}

export interface SourceDisk {
  id: string;
  path: string;
  format: DiskFormat;
  /** Bytes the guest sees. */
  virtualSize: number;
  changeTracking: ChangeTracking;
  /** qcow2 overlays: the backing file qemu reads through (the export shows the whole chain). */
  backingFile?: string;
  /** VMware: the disk's label ("Hard disk 1") and datastore. */
  label?: string;
  datastore?: string;
}

export interface SourceVm {
  id: string;
  name: string;
  /** Sources that know it (VMware). */
  powerState?: 'on' | 'off' | 'suspended';
  disks: SourceDisk[];
  /** Disks that hold data but cannot be backed up: every point of the VM lacks them, and says so. */
  leftOut?: DiskLeftOut[];
}

/** `: vdb: why; vdc: why` for a message about a VM with disks left out, or nothing. */
export function leftOutText(vm: SourceVm): string {
  return vm.leftOut?.length ? `: ${vm.leftOut.map((d) => `${d.diskId}: ${d.reason}`).join('; ')}` : '';
}

/** A disk the inventory names but that cannot be backed up (missing file, unsupported format, ...). */
export interface DiskProblem {
  vmId: string;
  diskId: string;
  path: string;
  message: string;
}

export interface InventoryScan {
  /** VMs whose every disk could be inspected. */
  vms: SourceVm[];
  /** One entry per disk that could not; its VM is left out of `vms`. */
  problems: DiskProblem[];
}

export interface SnapshotDisk {
  diskId: string;
  /** `nbd+unix:///disk?socket=PATH`; where `open` is set, the address it reads (for messages). */
  uri: string;
  socketPath?: string;
  exportName?: string;
  format: DiskFormat;
  virtualSize: number;
  /** Persistent dirty bitmap exported as NBD meta context `qemu:dirty-bitmap:<bitmap>`. */
  bitmap?: string;
  /** `qemu:dirty-bitmap:<bitmap>` when a bitmap is exported. */
  dirtyBitmapContext?: string;
  /** A disk that is not an NBD export (a VMware datastore file): opens the reader the copy reads from. */
  open?: () => Promise<CopySource & { close(): Promise<void> }>;
  /** What to copy, as the source's own change tracking says (VMware's changed areas), instead of a bitmap. */
  ranges?: { offset: number; length: number }[];
  /** The source's change tracking reference as of this snapshot (VMware's changeId), recorded with the point. */
  changeRef?: string;
}

export interface Snapshot {
  snapshotId: string;
  vmId: string;
  disks: SnapshotDisk[];
  /** Stops every qemu-nbd of the snapshot (SIGTERM, then SIGKILL) and removes its directory. Idempotent. */
  close(): Promise<void>;
  readonly closed: boolean;
}

export interface OpenSnapshotOptions {
  /** diskId -> bitmap to export with `-B` (usually `PreparedBackup.bitmaps`). Disks not named are exported without one. */
  bitmaps?: Record<string, string | undefined>;
}

export type BackupMode = 'full' | 'incremental';

export interface PrepareBackupRequest {
  /** The restore point this backup will create; its bitmap `sendense-<newPointId>` starts recording now. */
  newPointId: string;
  /** The last SUCCESSFUL restore point of the chain, or null for a full backup. */
  sincePointId: string | null;
  /** That point's disks as the hub recorded them (VMware continues its chain from their changeIds). */
  sinceDisks?: SinceDisk[];
}

export interface PreparedDisk {
  diskId: string;
  mode: BackupMode;
  /** Incremental only: the bitmap to export and copy (`sendense-<sincePointId>`). */
  bitmap?: string;
  /** qcow2 only: the bitmap now recording writes for the NEXT backup (`sendense-<newPointId>`). */
  newBitmap?: string;
  /** Why this disk is copied whole. */
  reason?: string;
}

export interface PreparedBackup {
  vmId: string;
  newPointId: string;
  sincePointId: string | null;
  /** The same for every disk of the VM. */
  mode: BackupMode;
  /** Why the VM gets a full backup (every disk's reason, joined). */
  reason?: string;
  disks: PreparedDisk[];
  /** diskId -> bitmap to export; pass as `openSnapshot(vm, { bitmaps })`. Empty for a full backup. */
  bitmaps: Record<string, string>;
}

export interface CompleteBackupRequest {
  newPointId: string;
  sincePointId: string | null;
  /** true only once the restore point is durably recorded; false for a failed or cancelled backup. */
  success: boolean;
}

export interface CompletedDisk {
  diskId: string;
  /** Bitmaps removed from the image. */
  removed: string[];
  /** Failure path: `newBitmap` merged into `into` before it was removed. */
  merged?: { from: string; into: string };
  /** Things the next backup should know (e.g. it will have to be full). */
  warnings: string[];
  /** Set when the image could not be changed (locked by a started VM): nothing was done on this disk; safe, see README. */
  deferred?: string;
}

export interface CompletedBackup {
  vmId: string;
  success: boolean;
  /** false when at least one disk was deferred. */
  complete: boolean;
  disks: CompletedDisk[];
}

/** Per disk view of whether an incremental since a point can be taken. */
export interface ChainCheck {
  ok: boolean;
  reason?: string;
  /** Not ok because a disk that tracks changes lost them (not merely a raw disk, which never tracks any). */
  broken?: boolean;
  disks: Array<{ diskId: string; ok: boolean; reason?: string }>;
}

export interface QemuImageSourceOptions {
  /** JSON inventory file, read again on every listVms() so an operator's edit is picked up. */
  inventoryFile?: string;
  /** Or the inventory document itself (validated the same way). */
  inventory?: unknown;
  /** Where private snapshot directories (Unix sockets, pid files) are created. Default: os.tmpdir(). */
  runDir?: string;
  /** Bitmap name prefix; every bitmap with this prefix belongs to this driver. Default `sendense-`. */
  bitmapPrefix?: string;
  /** Granularity of new bitmaps in bytes. Default 65536. */
  bitmapGranularity?: number;
  qemuImgBinary?: string;
  qemuNbdBinary?: string;
  /** Time for qemu-nbd to exit after SIGTERM before SIGKILL. Default 10 s. */
  stopTimeoutMs?: number;
  /** Time for qemu-nbd to open its image and write its pid file. Default 10 s. */
  readyTimeoutMs?: number;
  /** Time limit for one qemu-img command. Default 60 s. */
  commandTimeoutMs?: number;
  /** Shared clients per export (`--shared`). Default 4. */
  sharedClients?: number;
}
