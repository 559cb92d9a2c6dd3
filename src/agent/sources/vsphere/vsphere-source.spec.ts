import type { SinceDisk } from '../../../wire/backup-protocol';
import { changedAreas, VsphereSource } from './vsphere-source';
import { MoRef, VsphereClient, VsphereDisk, VsphereFault, VsphereVm } from './vsphere-client';

/** The vSphere client is the collaborator here: a fake that records what the source asks of it. */
class FakeVsphere {
  calls: string[] = [];
  vm: VsphereVm;
  files = new Map<string, Buffer>();
  /** The answers of QueryChangedDiskAreas, per changeId; a missing changeId is refused as vSphere does. */
  areas = new Map<string, { start: number; length: number }[]>();
  quiesceFails = false;
  pageSize = 1 << 20;
  snapshotCount = 0;

  constructor(disks: VsphereDisk[], extra: Partial<VsphereVm> = {}) {
    this.vm = { ref: { type: 'VirtualMachine', value: 'vm-1' }, instanceUuid: '5003a1b2-0000-0000-0000-000000000001', name: 'web', powerState: 'poweredOn', toolsRunning: true, changeTrackingEnabled: true, disks, datacenter: 'DC0', snapshots: [], ...extra };
    for (const d of disks) {
      const path = d.fileName.replace(/^\[[^\]]+\] /, '');
      this.files.set(path, Buffer.from(`# Disk DescriptorFile\nparentCID=ffffffff\nRW ${d.capacityBytes / 512} VMFS "${path.split('/').pop()!.replace('.vmdk', '-flat.vmdk')}"\n`));
      this.files.set(path.replace('.vmdk', '-flat.vmdk'), Buffer.alloc(d.capacityBytes));
    }
  }

  async listVms() {
    return [this.vm];
  }
  async findVm(uuid: string) {
    return uuid === this.vm.instanceUuid ? this.vm : null;
  }
  async setChangeTracking(_vm: MoRef, enabled: boolean) {
    this.calls.push(`setChangeTracking ${enabled}`);
    this.vm.changeTrackingEnabled = enabled;
  }
  async createSnapshot(_vm: MoRef, name: string, _d: string, o: { quiesce: boolean }) {
    this.calls.push(`createSnapshot ${name} quiesce=${o.quiesce}`);
    if (o.quiesce && this.quiesceFails) throw new VsphereFault('ApplicationQuiesceFault', 'quiescing failed');
    const ref = { type: 'VirtualMachineSnapshot', value: `snapshot-${++this.snapshotCount}` };
    this.vm.snapshots.push({ ref, name, description: '', createTime: '' });
    return ref;
  }
  async removeSnapshot(ref: MoRef) {
    this.calls.push(`removeSnapshot ${ref.value}`);
    this.vm.snapshots = this.vm.snapshots.filter((s) => s.ref.value !== ref.value);
  }
  async snapshotDisks() {
    return this.vm.disks;
  }
  datastoreUrl(dc: string, ds: string, path: string) {
    return new URL(`https://vc.example/folder/${path}?dcPath=${dc}&dsName=${ds}`);
  }
  private file(url: URL) {
    const data = this.files.get(decodeURIComponent(url.pathname.slice('/folder/'.length)));
    if (!data) throw new Error(`GET ${url.pathname}: 404 Not Found`);
    return data;
  }
  async fileSize(url: URL) {
    return this.file(url).length;
  }
  async getFile(url: URL) {
    return this.file(url);
  }
  async readRange(url: URL, offset: number, length: number) {
    return this.file(url).subarray(offset, offset + length);
  }
  async queryChangedDiskAreas(_vm: MoRef, _s: MoRef, key: number, startOffset: number, changeId: string) {
    this.calls.push(`query ${key}@${startOffset} ${changeId}`);
    const all = this.areas.get(changeId);
    if (!all) throw new VsphereFault('FileFault', `changeId ${changeId} is not valid`);
    const end = Math.min(startOffset + this.pageSize, this.vm.disks.find((d) => d.key === key)!.capacityBytes);
    return { startOffset, length: end - startOffset, changedArea: all.filter((a) => a.start >= startOffset && a.start < end) };
  }
  async logout() {}
}

const MiB = 1 << 20;
const disk = (key: number, changeId: string | null = '52 aa/4'): VsphereDisk => ({ key, label: `Hard disk ${key}`, capacityBytes: 4 * MiB, fileName: `[LocalDS_0] web/web_${key}.vmdk`, datastore: 'LocalDS_0', changeId, thin: true });

function sourceOn(fake: FakeVsphere) {
  const logs: string[] = [];
  const source = new VsphereSource({ connect: async () => fake as unknown as VsphereClient, snapshotPrefix: 'sendense-a1-', log: (_l, m) => logs.push(m) });
  return { source, logs };
}

const since = (changeRef: string | null, virtualSize = 4 * MiB): SinceDisk[] => [{ diskId: 'disk-2000', virtualSize, changeRef }];

describe('VsphereSource', () => {
  const vmId = '5003a1b2-0000-0000-0000-000000000001';

  it('reports each disk by its device key, raw, with CBT as its change tracking', async () => {
    const { source } = sourceOn(new FakeVsphere([disk(2000), { ...disk(2001), fileName: 'not a datastore path' }]));
    const scan = await source.scanInventory();
    expect(scan.vms).toEqual([{ id: vmId, name: 'web', powerState: 'on', disks: [{ id: 'disk-2000', path: '[LocalDS_0] web/web_2000.vmdk', format: 'raw', virtualSize: 4 * MiB, changeTracking: 'cbt', label: 'Hard disk 2000', datastore: 'LocalDS_0' }], leftOut: [{ diskId: 'disk-2001', reason: expect.stringMatching(/not a datastore path/) }] }]);
    expect(scan.problems).toEqual([expect.objectContaining({ diskId: 'disk-2001', path: 'not a datastore path', message: expect.stringMatching(/not a datastore path/) })]);
    // the plan the hub records with the job names it too
    expect(await source.getVm(vmId)).toMatchObject({ disks: [{ id: 'disk-2000' }], leftOut: [{ diskId: 'disk-2001' }] });
  });

  it.each([
    ['CBT off', { changeTrackingEnabled: false }, since('52 aa/3'), /changed block tracking is off/],
    ['no changeId recorded', {}, since(null), /no changeId recorded with rp-1/],
    ['a resized disk', {}, since('52 aa/3', 2 * MiB), /resized \(2097152 -> 4194304 bytes\)/],
    ['a reset of CBT (another epoch)', {}, since('52 bb/9'), /was reset since rp-1/],
    ['a disk without a changeId (CBT turned off and on)', { disks: [disk(2000, null)] }, since('52 aa/3'), /no changeId: changed block tracking was turned off and on again/],
  ])('ends the chain on %s', async (_what, vm, sinceDisks, reason) => {
    const { source } = sourceOn(new FakeVsphere([disk(2000)], vm));
    const check = await source.checkChain(vmId, 'rp-1', sinceDisks);
    expect(check).toEqual({ ok: false, reason: expect.stringMatching(reason), broken: true });
  });

  it('continues the chain from a changeId of the same epoch', async () => {
    const { source } = sourceOn(new FakeVsphere([disk(2000)]));
    expect(await source.checkChain(vmId, 'rp-1', since('52 aa/3'))).toEqual({ ok: true });
  });

  it('turns CBT on for a full and says so', async () => {
    const fake = new FakeVsphere([disk(2000, null)], { changeTrackingEnabled: false });
    const { source, logs } = sourceOn(fake);
    const prepared = await source.prepareBackup(vmId, { newPointId: 'rp-2', sincePointId: 'rp-1', sinceDisks: since('52 aa/3') });
    expect(prepared.mode).toBe('full');
    expect(fake.calls).toEqual(['setChangeTracking true']);
    expect(logs.join('\n')).toMatch(/this backup is a full, the next can be incremental/);
  });

  it('reads an incremental by the changed areas, paged to the disk end, and records the new changeId', async () => {
    const fake = new FakeVsphere([disk(2000)]);
    fake.areas.set('52 aa/3', [{ start: 0, length: 65536 }, { start: 65536, length: 65536 }, { start: 3 * MiB, length: 131072 }]);
    const { source } = sourceOn(fake);
    await source.prepareBackup(vmId, { newPointId: 'rp-2', sincePointId: 'rp-1', sinceDisks: since('52 aa/3') });
    const snapshot = await source.openSnapshot(vmId);
    expect(snapshot.disks).toEqual([expect.objectContaining({ diskId: 'disk-2000', format: 'raw', virtualSize: 4 * MiB, changeRef: '52 aa/4', ranges: [{ offset: 0, length: 131072 }, { offset: 3 * MiB, length: 131072 }] })]);
    expect(fake.calls.filter((c) => c.startsWith('query'))).toEqual(['query 2000@0 52 aa/3', 'query 2000@1048576 52 aa/3', 'query 2000@2097152 52 aa/3', 'query 2000@3145728 52 aa/3']);
    expect(snapshot.consistency).toEqual({ consistency: 'application', consistencyReason: null, freezeMs: null });
    await snapshot.close();
    expect(fake.vm.snapshots).toEqual([]);
  });

  it('ends the chain when vSphere refuses the changeId: the snapshot goes, the backup fails, the next plan is a full', async () => {
    const fake = new FakeVsphere([disk(2000)]);
    const { source } = sourceOn(fake);
    await source.prepareBackup(vmId, { newPointId: 'rp-2', sincePointId: 'rp-1', sinceDisks: since('52 aa/3') });
    await expect(source.openSnapshot(vmId)).rejects.toThrow(/vSphere refused changeId 52 aa\/3 of disk disk-2000 \(FileFault: .*\).*the next backup is a full/);
    expect(fake.vm.snapshots).toEqual([]);
    expect(await source.checkChain(vmId, 'rp-1', since('52 aa/3'))).toEqual({ ok: false, reason: expect.stringMatching(/vSphere refused changeId/), broken: true });
  });

  it('removes the snapshot when a disk cannot be read after it was taken', async () => {
    const fake = new FakeVsphere([disk(2000)]);
    fake.files.delete('web/web_2000-flat.vmdk');
    const { source } = sourceOn(fake);
    await source.prepareBackup(vmId, { newPointId: 'rp-1', sincePointId: null });
    await expect(source.openSnapshot(vmId)).rejects.toThrow(/404/);
    expect(fake.calls.filter((c) => /Snapshot/.test(c))).toEqual(['createSnapshot sendense-a1-rp-1 quiesce=true', 'removeSnapshot snapshot-1']);
  });

  it('takes a crash-consistent snapshot when quiescing fails, and without VMware Tools', async () => {
    const fake = new FakeVsphere([disk(2000)]);
    fake.quiesceFails = true;
    fake.areas.set('*', []);
    const { source } = sourceOn(fake);
    await source.prepareBackup(vmId, { newPointId: 'rp-1', sincePointId: null });
    const snapshot = await source.openSnapshot(vmId);
    expect(snapshot.consistency).toEqual({ consistency: 'crash', consistencyReason: expect.stringMatching(/quiescing the guest failed: quiescing failed \(ApplicationQuiesceFault\)/), freezeMs: null });
    expect(snapshot.disks[0].ranges).toEqual([]);
    await snapshot.close();
    fake.vm.toolsRunning = false;
    await source.prepareBackup(vmId, { newPointId: 'rp-2', sincePointId: null });
    const second = await source.openSnapshot(vmId);
    expect(second.consistency?.consistencyReason).toMatch(/VMware Tools are not running/);
    await second.close();
  });

  it('removes at start only the snapshots its prefix names', async () => {
    const fake = new FakeVsphere([disk(2000)]);
    fake.vm.snapshots = [
      { ref: { type: 'VirtualMachineSnapshot', value: 's1' }, name: 'sendense-a1-rp-9', description: '', createTime: '' },
      { ref: { type: 'VirtualMachineSnapshot', value: 's2' }, name: 'before upgrade', description: '', createTime: '' },
      { ref: { type: 'VirtualMachineSnapshot', value: 's3' }, name: 'sendense-b2-rp-1', description: '', createTime: '' },
    ];
    const { source } = sourceOn(fake);
    expect(await source.cleanupLeftovers()).toEqual({ removedSnapshots: ['web/sendense-a1-rp-9'] });
    expect(fake.vm.snapshots.map((s) => s.name)).toEqual(['before upgrade', 'sendense-b2-rp-1']);
  });
});

describe('changedAreas', () => {
  const vm = { type: 'VirtualMachine', value: 'vm-1' };
  const snap = { type: 'VirtualMachineSnapshot', value: 's' };

  it('refuses an answer that does not go on from where it was asked', async () => {
    const client = { queryChangedDiskAreas: async () => ({ startOffset: 0, length: 0, changedArea: [] }) };
    await expect(changedAreas(client, vm, snap, { key: 2000, capacityBytes: MiB }, '*')).rejects.toThrow(/does not go on from there/);
  });

  it('refuses an area outside the disk', async () => {
    const client = { queryChangedDiskAreas: async () => ({ startOffset: 0, length: MiB, changedArea: [{ start: MiB - 4096, length: 8192 }] }) };
    await expect(changedAreas(client, vm, snap, { key: 2000, capacityBytes: MiB }, '*')).rejects.toThrow(/outside disk 2000/);
  });
});
