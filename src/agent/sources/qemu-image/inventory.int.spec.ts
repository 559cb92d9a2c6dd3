import { join } from 'node:path';
import { createImage, makeTempDir, MiB, removeTempDir, startWritableQemuNbd, writeInventory } from '../../../../test/fixtures/agent/qemu-images';
import { DiskInspectionError, InventoryError } from './errors';
import { QemuImageSource } from './qemu-image-source';

describe('QemuImageSource inventory (real images)', () => {
  let dir: string;

  beforeAll(async () => {
    dir = makeTempDir('qinv');
    await createImage(join(dir, 'db-disk0.qcow2'), 'qcow2', 64 * MiB);
    await createImage(join(dir, 'db-disk1.img'), 'raw', 3 * MiB);
    await createImage(join(dir, 'web.qcow2'), 'qcow2', 10 * MiB);
    await createImage(join(dir, 'old.vmdk'), 'vmdk', 8 * MiB);
  });
  afterAll(() => removeTempDir(dir));

  const vm = (id: string, ...disks: Array<{ id: string; file: string; format?: string }>) => ({
    id,
    name: `${id} name`,
    disks: disks.map((d) => ({ id: d.id, path: join(dir, d.file), ...(d.format ? { format: d.format } : {}) })),
  });

  it('detects qcow2 and raw, reports virtual sizes and change tracking', async () => {
    const source = new QemuImageSource({
      inventoryFile: writeInventory(join(dir, 'inv1.json'), { vms: [vm('db', { id: 'disk0', file: 'db-disk0.qcow2' }, { id: 'disk1', file: 'db-disk1.img' }), vm('web', { id: 'disk0', file: 'web.qcow2' })] }),
    });
    expect(await source.listVms()).toEqual([
      {
        id: 'db',
        name: 'db name',
        disks: [
          { id: 'disk0', path: join(dir, 'db-disk0.qcow2'), format: 'qcow2', virtualSize: 64 * MiB, changeTracking: 'dirty-bitmap' },
          { id: 'disk1', path: join(dir, 'db-disk1.img'), format: 'raw', virtualSize: 3 * MiB, changeTracking: 'none' },
        ],
      },
      { id: 'web', name: 'web name', disks: [{ id: 'disk0', path: join(dir, 'web.qcow2'), format: 'qcow2', virtualSize: 10 * MiB, changeTracking: 'dirty-bitmap' }] },
    ]);
  });

  it('refuses unsupported formats and missing files, naming every such disk; scanInventory keeps the good VMs', async () => {
    const source = new QemuImageSource({
      inventory: {
        vms: [vm('good', { id: 'disk0', file: 'web.qcow2' }), vm('legacy', { id: 'disk0', file: 'db-disk0.qcow2' }, { id: 'disk1', file: 'old.vmdk' }), vm('gone', { id: 'd', file: 'nope.qcow2' })],
      },
    });
    const error = await source.listVms().catch((e: unknown) => e);
    expect(error).toBeInstanceOf(DiskInspectionError);
    expect((error as DiskInspectionError).message).toContain(`VM legacy disk disk1 (${join(dir, 'old.vmdk')}): format vmdk is not supported (only qcow2 and raw`);
    expect((error as DiskInspectionError).message).toContain(`VM gone disk d (${join(dir, 'nope.qcow2')}): Could not open`);
    const scan = await source.scanInventory();
    expect(scan.vms.map((v) => v.id)).toEqual(['good']);
    expect(scan.problems.map((p) => `${p.vmId}/${p.diskId}`)).toEqual(['legacy/disk1', 'gone/d']);
    expect(scan.problems[1].message).toMatch(/No such file or directory/);
  });

  it('honours a pinned format (a qcow2 file pinned as raw is exported raw; a raw file pinned as qcow2 is refused)', async () => {
    const source = new QemuImageSource({
      inventory: { vms: [vm('pinned', { id: 'd0', file: 'web.qcow2', format: 'raw' }), vm('wrong', { id: 'd0', file: 'db-disk1.img', format: 'qcow2' })] },
    });
    const scan = await source.scanInventory();
    expect(scan.vms[0].disks[0]).toMatchObject({ format: 'raw', changeTracking: 'none' });
    expect(scan.problems).toEqual([expect.objectContaining({ vmId: 'wrong', message: expect.stringMatching(/not in qcow2 format/) })]);
  });

  it('lists a VM whose disk is held by a running writer (inventory uses -U)', async () => {
    const writer = await startWritableQemuNbd(join(dir, 'web.qcow2'), join(dir, 'web.sock'));
    try {
      const source = new QemuImageSource({ inventory: { vms: [vm('web', { id: 'disk0', file: 'web.qcow2' })] } });
      expect((await source.listVms())[0].disks[0].virtualSize).toBe(10 * MiB);
    } finally {
      await writer.stop();
    }
  });

  it('reports inventory validation errors with every problem', async () => {
    const source = new QemuImageSource({ inventory: { vms: [{ id: 'x y', name: 'x', disks: [{ id: 'd', path: 'rel.qcow2' }] }] } });
    const error = await source.listVms().catch((e: unknown) => e);
    expect(error).toBeInstanceOf(InventoryError);
    expect((error as InventoryError).problems).toHaveLength(2);
  });
});
