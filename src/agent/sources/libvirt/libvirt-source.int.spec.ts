import { execFileSync } from 'node:child_process';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { LibvirtSource } from './libvirt-source';

/**
 * An instant recovery's running domain: one disk it still copies from the hub, one of its own. The overlay is a
 * real qcow2 made by qemu-img; libvirt is faked by its virsh answers: what is tested is which questions reach qemu.
 * Debian's qemu 7.2 segfaulted recovered domains whose block nodes were described (domblkinfo, of any of their
 * disks) as a copy ended (test/e2e/instant-pulls.e2e.spec.ts).
 */
describe('the libvirt source, a domain an instant recovery still copies', () => {
  let dir: string;
  let source: LibvirtSource;
  const asked: string[][] = [];
  const uuid = '6a1f3b0e-2c41-4d59-9a57-0d3c2b1e4f70';

  beforeAll(() => {
    dir = mkdtempSync(join(tmpdir(), 'sendense-libvirt-source-'));
    const overlay = join(dir, 'r-vda.qcow2');
    execFileSync('qemu-img', ['create', '-q', '-f', 'qcow2', overlay, '96M']);
    execFileSync('qemu-img', ['create', '-q', '-f', 'raw', join(dir, 'data.img'), '32M']);
    const xml = `<domain type='qemu' id='7'><name>restored</name><uuid>${uuid}</uuid><devices>
      <disk type='file' device='disk'><driver name='qemu' type='qcow2'/><source file='${overlay}' index='2'/>
        <backingStore type='network' index='1'><format type='raw'/><source protocol='nbd' name='vda' index='1'><host transport='unix' socket='${dir}/vda.sock'/></source><backingStore/></backingStore>
        <target dev='vda' bus='virtio'/></disk>
      <disk type='file' device='disk'><driver name='qemu' type='raw'/><source file='${dir}/data.img' index='3'/><target dev='vdb' bus='virtio'/></disk>
    </devices></domain>`;
    const answers: Record<string, string> = { list: `${uuid}\n`, domstate: 'running\n', dumpxml: xml, domblkinfo: 'Capacity:       1073741824\nAllocation:     0\nPhysical:       1073741824\n' };
    source = new LibvirtSource({ workDir: dir });
    source.virsh = async (args: string[]) => (asked.push(args), answers[args[0]] ?? '');
  });
  afterAll(() => rmSync(dir, { recursive: true, force: true }));

  it('reads both disks\' capacities from their headers while one is copied: qemu is not asked about any of its block nodes', async () => {
    asked.length = 0;
    const scan = await source.scanInventory();
    expect(scan.vms).toEqual([
      {
        id: uuid,
        name: 'restored',
        disks: [
          { id: 'vda', path: join(dir, 'r-vda.qcow2'), format: 'qcow2', virtualSize: 96 * 2 ** 20, changeTracking: 'dirty-bitmap' },
          { id: 'vdb', path: join(dir, 'data.img'), format: 'raw', virtualSize: 32 * 2 ** 20, changeTracking: 'none' },
        ],
      },
    ]);
    expect(asked.filter((a) => a[0] === 'domblkinfo')).toEqual([]);
    // its copy ended: libvirt's XML no longer names the network backing, and qemu is asked again
    const done = source.virsh;
    source.virsh = async (args: string[]) => (args[0] === 'dumpxml' ? (await done(args)).replace(/<backingStore type='network'[\s\S]*?<\/backingStore>\s*<target/, '<target') : done(args));
    asked.length = 0;
    expect((await source.scanInventory()).vms[0].disks.map((d) => d.virtualSize)).toEqual([2 ** 30, 2 ** 30]);
    expect(asked.filter((a) => a[0] === 'domblkinfo')).toEqual([['domblkinfo', uuid, 'vda'], ['domblkinfo', uuid, 'vdb']]);
    source.virsh = done;
  });

  it('refuses to plan or start a backup until the copy has ended, naming the disk, before asking qemu anything', async () => {
    asked.length = 0;
    const refusal = 'domain restored is still copying vda from the hub (an instant recovery): back it up once the copy has ended';
    await expect(source.checkChain(uuid, 'p-0')).rejects.toThrow(refusal);
    await expect(source.prepareBackup(uuid, { newPointId: 'p-1', sincePointId: null })).rejects.toThrow(refusal);
    expect(asked.map((a) => a[0])).toEqual(['domstate', 'dumpxml', 'domstate', 'dumpxml']);
  });
});
