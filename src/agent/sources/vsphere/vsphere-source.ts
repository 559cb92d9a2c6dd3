import { randomUUID } from 'node:crypto';
import { posix } from 'node:path';
import type { Consistency, DiskLeftOut, SinceDisk } from '../../../wire/backup-protocol';
import { EndingSnapshot, type BackupSource, type SourceSnapshot } from '../backup-source';
import { leftOutText, type CompleteBackupRequest, type DiskProblem, type InventoryScan, type OpenSnapshotOptions, type PrepareBackupRequest, type PreparedBackup, type SnapshotDisk, type SourceDisk, type SourceVm } from '../qemu-image/types';
import { DatastoreDisk } from './datastore-disk';
import { MAX_DESCRIPTOR_BYTES, parseDatastorePath, parseVmdkDescriptor } from './vmdk-descriptor';
import { MoRef, VsphereClient, VsphereDisk, VsphereFault, VsphereVm } from './vsphere-client';

export interface VsphereSourceOptions {
  /** A logged-in client; called again after the session is lost. */
  connect: () => Promise<VsphereClient>;
  /** Snapshot name prefix: every snapshot with it belongs to this agent, and one left behind is removed at its start. */
  snapshotPrefix: string;
  log?: (level: 'info' | 'warn' | 'error', message: string) => void;
}

type Range = { offset: number; length: number };

interface Pending {
  newPointId: string;
  sincePointId: string | null;
  mode: 'full' | 'incremental';
  sinceDisks: SinceDisk[];
}

const diskIdOf = (d: VsphereDisk) => `disk-${d.key}`;
/** A changeId is `<uuid of the tracking epoch>/<sequence>`: a reset of CBT starts a new epoch, and no earlier id is valid in it. */
const epochOf = (changeId: string) => changeId.split('/')[0];

/**
 * Source driver for the VMs of a vCenter or ESXi host. A backup takes ONE VMware snapshot (no memory, quiesced
 * when VMware Tools run) covering every disk, reads each disk from the snapshot's view of its flat base file over
 * the datastore's HTTP access (Range GETs with the session's cookie), and removes the snapshot on every path.
 * Incrementals read only what changed block tracking (QueryChangedDiskAreas) reports since the previous point's
 * changeId, which the hub recorded with that point and hands back. docs/operations.md (VMware) says what was
 * verified, and against what.
 */
export class VsphereSource implements BackupSource {
  private session?: Promise<VsphereClient>;
  private readonly pending = new Map<string, Pending>();
  private readonly snapshots = new Map<string, EndingSnapshot>();
  /** A changeId vSphere refused during a backup: the chain cannot continue from that point, whatever the VM says now. */
  private readonly refused = new Map<string, { pointId: string; reason: string }>();

  constructor(private readonly opts: VsphereSourceOptions) {}

  private log(level: 'info' | 'warn' | 'error', message: string): void {
    this.opts.log?.(level, message);
  }

  client(): Promise<VsphereClient> {
    if (!this.session) {
      this.session = this.opts.connect();
      this.session.catch(() => (this.session = undefined));
    }
    return this.session;
  }

  // -------------------------------------------------------------- inventory

  async scanInventory(): Promise<InventoryScan> {
    const vms: SourceVm[] = [];
    const problems: DiskProblem[] = [];
    for (const vm of await (await this.client()).listVms()) {
      const found = describe(vm);
      for (const d of found.leftOut ?? []) problems.push({ vmId: vm.instanceUuid, diskId: d.diskId, path: vm.disks.find((v) => diskIdOf(v) === d.diskId)?.fileName ?? '', message: `skipped: ${d.reason}` });
      if (found.disks.length || found.leftOut) vms.push(found);
    }
    return { vms, problems };
  }

  async listVms(): Promise<SourceVm[]> {
    return (await this.scanInventory()).vms;
  }

  private async vm(vmId: string): Promise<VsphereVm> {
    const vm = await (await this.client()).findVm(vmId);
    if (!vm) throw new Error(`VM ${vmId} is not a VM of this vCenter (no VM has that instance UUID)`);
    return vm;
  }

  async getVm(vmId: string): Promise<SourceVm> {
    const vm = describe(await this.vm(vmId));
    if (!vm.disks.length) throw new Error(`VM ${vm.name} (${vmId}) has no disk that can be backed up${leftOutText(vm)}`);
    return vm;
  }

  // -------------------------------------------------------- change tracking

  async checkChain(vmId: string, sincePointId: string, sinceDisks?: SinceDisk[]): Promise<{ ok: boolean; reason?: string; broken?: boolean }> {
    return this.chainCheck(await this.vm(vmId), sincePointId, sinceDisks);
  }

  /** Whether CBT can continue the chain from the point: every disk tracked since the changeId recorded with it, in the same epoch, at the same size. */
  private chainCheck(vm: VsphereVm, sincePointId: string, sinceDisks: SinceDisk[] | undefined): { ok: boolean; reason?: string; broken?: boolean } {
    const refused = this.refused.get(vm.instanceUuid);
    if (refused?.pointId === sincePointId) return { ok: false, reason: refused.reason, broken: true };
    if (!vm.changeTrackingEnabled) return { ok: false, reason: 'changed block tracking is off on the VM (it is turned on at this backup, which is a full)', broken: true };
    for (const d of vm.disks.filter((disk) => !diskProblem(disk))) {
      const id = diskIdOf(d);
      const since = sinceDisks?.find((s) => s.diskId === id);
      if (!since?.changeRef) return { ok: false, reason: `disk ${id} has no changeId recorded with ${sincePointId}`, broken: true };
      if (since.virtualSize !== d.capacityBytes) return { ok: false, reason: `disk ${id} was resized (${since.virtualSize} -> ${d.capacityBytes} bytes) since ${sincePointId}`, broken: true };
      // vSphere clears a disk's changeId when its tracking is turned off; it has none until a snapshot after it is on again
      if (!d.changeId) return { ok: false, reason: `disk ${id} has no changeId: changed block tracking was turned off and on again since ${sincePointId}`, broken: true };
      if (epochOf(d.changeId) !== epochOf(since.changeRef)) {
        return { ok: false, reason: `changed block tracking of disk ${id} was reset since ${sincePointId} (changeId ${since.changeRef} belongs to an earlier epoch than ${d.changeId})`, broken: true };
      }
    }
    return { ok: true };
  }

  async prepareBackup(vmId: string, req: PrepareBackupRequest): Promise<PreparedBackup> {
    const vm = await this.vm(vmId);
    const check = req.sincePointId ? this.chainCheck(vm, req.sincePointId, req.sinceDisks) : { ok: false, reason: 'no earlier restore point in this chain' };
    const mode = check.ok ? 'incremental' : 'full';
    if (!vm.changeTrackingEnabled) {
      // Tracking starts at the snapshot this backup takes: its changeId is the base of the next incremental.
      await (await this.client()).setChangeTracking(vm.ref, true);
      this.log('info', `changed block tracking turned on for VM ${vm.name} (${vmId}): this backup is a full, the next can be incremental`);
    }
    this.pending.set(vmId, { newPointId: req.newPointId, sincePointId: req.sincePointId, mode, sinceDisks: req.sinceDisks ?? [] });
    const disks = vm.disks.filter((d) => !diskProblem(d));
    return {
      vmId,
      newPointId: req.newPointId,
      sincePointId: req.sincePointId,
      mode,
      ...(check.reason ? { reason: check.reason } : {}),
      disks: disks.map((d) => ({ diskId: diskIdOf(d), mode })),
      bitmaps: {},
    };
  }

  /** Nothing lives on the VM between backups but CBT itself; the snapshot went when the copy ended. */
  async completeBackup(vmId: string, req: CompleteBackupRequest): Promise<unknown> {
    if (req.success) this.refused.delete(vmId);
    return { vmId, success: req.success };
  }

  // --------------------------------------------------------------- snapshot

  async openSnapshot(vmId: string, _options: OpenSnapshotOptions = {}): Promise<SourceSnapshot> {
    const pending = this.pending.get(vmId);
    if (!pending) throw new Error(`no backup of ${vmId} was prepared`);
    this.pending.delete(vmId);
    if (this.snapshots.has(vmId)) throw new Error(`a backup of ${vmId} is already running`);
    const client = await this.client();
    const vm = await this.vm(vmId);
    // one of ours a removal that failed left (vCenter busy for a moment): the new snapshot would be taken on top of it,
    // its disks deltas of that one, and every backup of the VM would fail on them until the agent restarted
    for (const left of vm.snapshots.filter((s) => s.name.startsWith(this.opts.snapshotPrefix))) {
      this.log('warn', `removing snapshot ${left.name} of VM ${vm.name}, left by an earlier backup, before taking the next`);
      await this.removeSnapshot(client, vm, left.ref, left.name);
    }
    const name = `${this.opts.snapshotPrefix}${pending.newPointId}`;
    const { ref, consistency } = await this.takeSnapshot(client, vm, name);
    // its disks are added below, once each is found readable; closing it removes the VMware snapshot
    const snapshot = new EndingSnapshot(randomUUID(), vmId, [], consistency, () => this.removeSnapshot(client, vm, ref, name), (s) => {
      if (this.snapshots.get(vmId) === s) this.snapshots.delete(vmId);
    });
    this.snapshots.set(vmId, snapshot);
    try {
      const disks = await client.snapshotDisks(ref);
      for (const d of disks.filter((disk) => !diskProblem(disk))) snapshot.disks.push(await this.snapshotDisk(client, vm, ref, d, pending));
      const missing = vm.disks.filter((d) => !diskProblem(d) && !snapshot.disks.some((s) => s.diskId === diskIdOf(d)));
      if (missing.length) throw new Error(`the snapshot does not hold disk ${missing.map(diskIdOf).join(', ')}`);
      return snapshot;
    } catch (error) {
      await snapshot.close();
      throw error;
    }
  }

  /** Quiesced when VMware Tools run; a quiesce that fails leaves a crash-consistent snapshot, and says why. */
  private async takeSnapshot(client: VsphereClient, vm: VsphereVm, name: string): Promise<{ ref: MoRef; consistency: Consistency }> {
    const description = `Sendense backup ${name}: removed when the backup ends`;
    if (vm.powerState !== 'poweredOn') {
      const ref = await client.createSnapshot(vm.ref, name, description, { memory: false, quiesce: false });
      return { ref, consistency: { consistency: 'crash', consistencyReason: `the VM was ${vm.powerState}: its disks were read as it left them`, freezeMs: null } };
    }
    if (!vm.toolsRunning) {
      const ref = await client.createSnapshot(vm.ref, name, description, { memory: false, quiesce: false });
      return { ref, consistency: { consistency: 'crash', consistencyReason: 'VMware Tools are not running in the guest: it could not be quiesced', freezeMs: null } };
    }
    try {
      const ref = await client.createSnapshot(vm.ref, name, description, { memory: false, quiesce: true });
      return { ref, consistency: { consistency: 'application', consistencyReason: null, freezeMs: null } };
    } catch (error) {
      if (!(error instanceof VsphereFault)) throw error;
      this.log('warn', `quiescing VM ${vm.name} failed (${error.message}); taking a crash-consistent snapshot`);
      const ref = await client.createSnapshot(vm.ref, name, description, { memory: false, quiesce: false });
      return { ref, consistency: { consistency: 'crash', consistencyReason: `quiescing the guest failed: ${error.faultString} (${error.faultType})`, freezeMs: null } };
    }
  }

  private async snapshotDisk(client: VsphereClient, vm: VsphereVm, snapshot: MoRef, d: VsphereDisk, pending: Pending): Promise<SnapshotDisk> {
    const diskId = diskIdOf(d);
    const { datastore, path } = parseDatastorePath(d.fileName);
    const descriptorUrl = client.datastoreUrl(vm.datacenter, datastore, path);
    const size = await client.fileSize(descriptorUrl);
    if (size > MAX_DESCRIPTOR_BYTES) throw new Error(`${d.fileName} (disk ${diskId}) is ${size} bytes: not a descriptor of a flat disk`);
    const extent = parseVmdkDescriptor((await client.getFile(descriptorUrl)).toString('utf8'), d.fileName);
    if (extent.bytes !== d.capacityBytes) throw new Error(`${d.fileName} describes ${extent.bytes} bytes, but disk ${diskId} has ${d.capacityBytes}`);
    const flatUrl = client.datastoreUrl(vm.datacenter, datastore, posix.join(posix.dirname(path), extent.file));
    const flatSize = await client.fileSize(flatUrl);
    if (flatSize < extent.offset + extent.bytes) throw new Error(`the flat file of disk ${diskId} (${extent.file}) holds ${flatSize} bytes, fewer than the disk's ${extent.bytes}`);
    const ranges = await this.changedRanges(client, vm, snapshot, d, pending);
    return {
      diskId,
      uri: flatUrl.toString(),
      format: 'raw',
      virtualSize: d.capacityBytes,
      open: async () => new DatastoreDisk(client, flatUrl, d.capacityBytes, extent.offset),
      ...(ranges ? { ranges } : {}),
      ...(d.changeId ? { changeRef: d.changeId } : {}),
    };
  }

  /**
   * What to read of a disk: since the previous point's changeId (incremental), or what holds data (`*`, full).
   * Without CBT the whole disk is read. A changeId vSphere refuses ends the chain there: the backup fails, and
   * the next one is a full on a new chain.
   */
  private async changedRanges(client: VsphereClient, vm: VsphereVm, snapshot: MoRef, d: VsphereDisk, pending: Pending): Promise<Range[] | undefined> {
    const diskId = diskIdOf(d);
    if (pending.mode === 'incremental') {
      const since = pending.sinceDisks.find((s) => s.diskId === diskId)?.changeRef;
      if (!since) throw new Error(`disk ${diskId} has no changeId recorded with ${pending.sincePointId}`);
      try {
        return await changedAreas(client, vm.ref, snapshot, d, since);
      } catch (error) {
        if (!(error instanceof VsphereFault)) throw error;
        const reason = `vSphere refused changeId ${since} of disk ${diskId} (${error.faultType}: ${error.faultString}): changed block tracking cannot continue from ${pending.sincePointId}`;
        this.refused.set(vm.instanceUuid, { pointId: pending.sincePointId!, reason });
        throw new Error(`${reason}; the next backup is a full`);
      }
    }
    if (!d.changeId) return undefined;
    try {
      return await changedAreas(client, vm.ref, snapshot, d, '*');
    } catch (error) {
      if (!(error instanceof VsphereFault)) throw error;
      this.log('warn', `vSphere did not say which areas of disk ${diskId} of ${vm.name} hold data (${error.faultType}: ${error.faultString}); reading all of it`);
      return undefined;
    }
  }

  /** Removed on every path; retried, since a snapshot left on a VM grows its delta until someone notices. */
  private async removeSnapshot(client: VsphereClient, vm: VsphereVm, ref: MoRef, name: string): Promise<void> {
    for (let attempt = 1; ; attempt++) {
      try {
        await client.removeSnapshot(ref, { consolidate: true });
        return;
      } catch (error) {
        if (error instanceof VsphereFault && error.faultType === 'ManagedObjectNotFound') return;
        if (attempt >= 3) {
          this.log('error', `snapshot ${name} of VM ${vm.name} could not be removed (${(error as Error).message}); the next agent start removes it`);
          throw error;
        }
        await new Promise((r) => setTimeout(r, 1000 * attempt));
      }
    }
  }

  async closeAll(): Promise<void> {
    await Promise.allSettled([...this.snapshots.values()].map((s) => s.close()));
    const session = this.session;
    this.session = undefined;
    await session?.then((c) => c.logout()).catch(() => undefined);
  }

  /** At agent start: every snapshot of ours a killed agent left on a VM is removed, by its name. */
  async cleanupLeftovers(): Promise<{ removedSnapshots: string[] }> {
    const client = await this.client();
    const removedSnapshots: string[] = [];
    for (const vm of await client.listVms()) {
      for (const s of vm.snapshots.filter((snap) => snap.name.startsWith(this.opts.snapshotPrefix))) {
        await this.removeSnapshot(client, vm, s.ref, s.name).then(
          () => removedSnapshots.push(`${vm.name}/${s.name}`),
          (e: Error) => this.log('error', `snapshot ${s.name} of ${vm.name}, left by an earlier agent, could not be removed: ${e.message}`),
        );
      }
    }
    if (removedSnapshots.length) this.log('warn', `cleaned up after a previous agent: removed snapshots ${removedSnapshots.join(', ')}`);
    return { removedSnapshots };
  }
}

/** Every area QueryChangedDiskAreas reports, page after page to the disk's end, sorted and merged. */
export async function changedAreas(client: Pick<VsphereClient, 'queryChangedDiskAreas'>, vm: MoRef, snapshot: MoRef, d: Pick<VsphereDisk, 'key' | 'capacityBytes'>, changeId: string): Promise<Range[]> {
  const ranges: Range[] = [];
  for (let start = 0; start < d.capacityBytes; ) {
    const info = await client.queryChangedDiskAreas(vm, snapshot, d.key, start, changeId);
    const end = info.startOffset + info.length;
    if (info.startOffset > start || end <= start) throw new Error(`QueryChangedDiskAreas at ${start} of disk ${d.key} answered ${info.startOffset}+${info.length}, which does not go on from there`);
    for (const a of info.changedArea) {
      if (!Number.isSafeInteger(a.start) || !Number.isSafeInteger(a.length) || a.start < 0 || a.length < 0 || a.start + a.length > d.capacityBytes) {
        throw new Error(`QueryChangedDiskAreas reported ${a.start}+${a.length}, outside disk ${d.key}'s ${d.capacityBytes} bytes`);
      }
      if (a.length > 0) ranges.push({ offset: a.start, length: a.length });
    }
    start = end;
  }
  ranges.sort((a, b) => a.offset - b.offset);
  const merged: Range[] = [];
  for (const r of ranges) {
    const last = merged.at(-1);
    if (last && r.offset <= last.offset + last.length) last.length = Math.max(last.length, r.offset + r.length - last.offset);
    else merged.push({ ...r });
  }
  return merged;
}

const POWER = { poweredOn: 'on', poweredOff: 'off', suspended: 'suspended' } as const;

function sourceDisk(vm: VsphereVm, d: VsphereDisk): SourceDisk {
  return { id: diskIdOf(d), path: d.fileName, format: 'raw', virtualSize: d.capacityBytes, changeTracking: vm.changeTrackingEnabled ? 'cbt' : 'none', label: d.label, datastore: d.datastore };
}

/** Why a disk cannot be read over datastore HTTP, or null. */
/** The VM's disks this source reads, and those it cannot (every vSphere disk holds data: none is skipped silently). */
function describe(vm: VsphereVm): SourceVm {
  const disks: SourceDisk[] = [];
  const leftOut: DiskLeftOut[] = [];
  for (const d of vm.disks) {
    const problem = diskProblem(d);
    if (problem) leftOut.push({ diskId: diskIdOf(d), reason: problem });
    else disks.push(sourceDisk(vm, d));
  }
  return { id: vm.instanceUuid, name: vm.name, powerState: POWER[vm.powerState], disks, ...(leftOut.length ? { leftOut } : {}) };
}

function diskProblem(d: VsphereDisk): string | null {
  try {
    parseDatastorePath(d.fileName);
    return null;
  } catch (error) {
    return (error as Error).message;
  }
}
