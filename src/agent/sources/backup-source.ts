import type { CompleteBackupRequest, InventoryScan, OpenSnapshotOptions, PrepareBackupRequest, PreparedBackup, Snapshot, SnapshotDisk, SourceVm } from './qemu-image/types';
import type { Consistency, SinceDisk } from '../../wire/backup-protocol';
import type { VmConfiguration } from '../../wire/vm-configuration';

/**
 * A snapshot that may say how consistent it is (a running VM frozen through its guest agent, or not) and
 * what the VM's configuration was at its instant (sources that know one: libvirt).
 */
export interface SourceSnapshot extends Snapshot {
  consistency?: Consistency;
  configuration?: VmConfiguration;
}

/**
 * What the agent's runner and API need of a source driver: the qemu-image driver (powered-off images
 * named in an inventory file) and the libvirt driver (every domain of a libvirt host, running or not).
 */
export interface BackupSource {
  scanInventory(): Promise<InventoryScan>;
  listVms(): Promise<SourceVm[]>;
  getVm(vmId: string): Promise<SourceVm>;
  /** `broken`: not ok because a disk that tracks changes lost them since the point (the chain breaks there). */
  checkChain(vmId: string, sincePointId: string, sinceDisks?: SinceDisk[]): Promise<{ ok: boolean; reason?: string; broken?: boolean }>;
  prepareBackup(vmId: string, req: PrepareBackupRequest): Promise<PreparedBackup>;
  openSnapshot(vmId: string, options: OpenSnapshotOptions): Promise<SourceSnapshot>;
  completeBackup(vmId: string, req: CompleteBackupRequest): Promise<unknown>;
  /** At agent start: what a killed agent left behind, undone. */
  cleanupLeftovers(): Promise<unknown>;
  /** At agent shutdown: every open snapshot closed. */
  closeAll(): Promise<void>;
}

/**
 * A snapshot that a source ends by one call (a libvirt backup job aborted, a VMware snapshot removed): `close()`
 * runs that end once however often it is called, then tells the source, which forgets it.
 */
export class EndingSnapshot implements SourceSnapshot {
  private closing?: Promise<void>;
  configuration?: VmConfiguration;

  constructor(
    readonly snapshotId: string,
    readonly vmId: string,
    readonly disks: SnapshotDisk[],
    readonly consistency: Consistency,
    private readonly end: () => Promise<void>,
    private readonly onClosed: (s: EndingSnapshot) => void,
  ) {}

  get closed(): boolean {
    return this.closing !== undefined;
  }

  close(): Promise<void> {
    if (!this.closing) this.closing = this.end().finally(() => this.onClosed(this));
    return this.closing;
  }
}
