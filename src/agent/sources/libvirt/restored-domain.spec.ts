import { parseDomainXml } from './domain-xml';
import { minimalDomainXml, restoredDomainXml, RestoredDomainSpec } from './restored-domain';

/** `virsh dumpxml --inactive` of the libvirt test guest (libvirt 9.0), with an interface, UEFI and a backing chain added. */
const RECORDED = `<domain type='qemu'>
  <name>sendense-e2e-ga-15537</name>
  <uuid>7c4e5fbc-2f32-49d0-9d91-44aa83e82c5c</uuid>
  <memory unit='KiB'>262144</memory>
  <vcpu placement='static'>1</vcpu>
  <os>
    <type arch='x86_64' machine='pc-i440fx-7.2'>hvm</type>
    <loader readonly='yes' type='pflash'>/usr/share/OVMF/OVMF_CODE_4M.fd</loader>
    <nvram template='/usr/share/OVMF/OVMF_VARS_4M.fd'>/var/lib/libvirt/qemu/nvram/sendense-e2e-ga-15537_VARS.fd</nvram>
    <boot dev='hd'/>
  </os>
  <devices>
    <emulator>/usr/bin/qemu-system-x86_64</emulator>
    <disk type='file' device='disk'>
      <driver name='qemu' type='qcow2'/>
      <source file='/tmp/sendense-guests-WiYoug/a/d0.qcow2'/>
      <backingStore type='file'>
        <format type='qcow2'/>
        <source file='/tmp/base.qcow2'/>
        <backingStore type='file'><format type='raw'/><source file='/tmp/base0.raw'/><backingStore/></backingStore>
      </backingStore>
      <target dev='vda' bus='virtio'/>
      <address type='pci' domain='0x0000' bus='0x00' slot='0x03' function='0x0'/>
    </disk>
    <disk type='block' device='disk'>
      <driver name='qemu' type='raw' cache='none'/>
      <source dev='/dev/vg0/data'/>
      <target dev='vdb' bus='virtio'/>
    </disk>
    <disk type='file' device='disk'>
      <driver name='qemu' type='raw'/>
      <source file='/srv/scratch.img'/>
      <target dev='vdc' bus='virtio'/>
    </disk>
    <disk type='file' device='cdrom'>
      <driver name='qemu' type='raw'/>
      <source file='/srv/iso/debian.iso'/>
      <target dev='hdc' bus='ide'/>
      <readonly/>
    </disk>
    <interface type='network'>
      <mac address='52:54:00:6b:3c:58'/>
      <source network='default'/>
      <model type='virtio'/>
    </interface>
    <serial type='file'>
      <source path='/tmp/sendense-guests-WiYoug/a/console.log'/>
      <target type='isa-serial' port='0'>
        <model name='isa-serial'/>
      </target>
    </serial>
    <console type='file'>
      <source path='/tmp/sendense-guests-WiYoug/a/console.log'/>
      <target type='serial' port='0'/>
    </console>
    <channel type='unix'>
      <target type='virtio' name='org.qemu.guest_agent.0'/>
    </channel>
  </devices>
</domain>
`;

const spec: RestoredDomainSpec = {
  name: 'web&restored',
  uuid: '0b9bd5a4-61c9-4a55-9d5c-2f0c4e7b3a11',
  disks: [
    { target: 'vda', file: '/var/lib/libvirt/images/web-vda.qcow2', format: 'qcow2' },
    { target: 'vdb', file: '/var/lib/libvirt/images/web-vdb.qcow2', format: 'qcow2' },
  ],
  nvramFile: '/var/lib/libvirt/images/web_VARS.fd',
  consoleLog: '/var/lib/libvirt/images/web.console.log',
};

describe('the domain a restore point is defined as', () => {
  it('keeps the recorded machine and gives it a new name, uuid, MAC, the restored files, its own console log and UEFI store', () => {
    const { xml, notes } = restoredDomainXml(RECORDED, spec);
    const info = parseDomainXml(xml);
    expect(info.name).toBe('web&restored');
    expect(info.uuid).toBe(spec.uuid);
    expect(info.disks.map((d) => [d.target, d.type, d.device, d.format, d.file])).toEqual([
      ['vda', 'file', 'disk', 'qcow2', '/var/lib/libvirt/images/web-vda.qcow2'],
      ['vdb', 'file', 'disk', 'qcow2', '/var/lib/libvirt/images/web-vdb.qcow2'],
      ['hdc', 'file', 'cdrom', 'raw', null],
    ]);
    expect(xml).not.toMatch(/backingStore|7c4e5fbc|52:54:00:6b:3c:58|\/dev\/vg0|scratch\.img|debian\.iso|sendense-guests/);
    // the whole recorded machine is still there
    expect(xml).toContain("<type arch='x86_64' machine='pc-i440fx-7.2'>hvm</type>");
    expect(xml).toContain("<interface type='network'>");
    expect(xml).toContain("<driver name='qemu' type='qcow2' cache='none'/>");
    expect(xml).toContain("<nvram template='/usr/share/OVMF/OVMF_VARS_4M.fd'>/var/lib/libvirt/images/web_VARS.fd</nvram>");
    expect(xml.match(/<source path='\/var\/lib\/libvirt\/images\/web.console.log'\/>/g)).toHaveLength(2);
    expect(xml).toContain("<target type='isa-serial' port='0'>");
    expect(notes).toEqual(['disk vdc is not in the restore point and was left out', 'cdrom hdc left empty (its medium is not part of the restore point)']);
  });

  it('lets libvirt make a fresh UEFI store when none was recorded, and leaves the network out of a drill', () => {
    const { xml, notes } = restoredDomainXml(RECORDED, { ...spec, nvramFile: null, withoutNetwork: true });
    expect(xml).toContain("<nvram template='/usr/share/OVMF/OVMF_VARS_4M.fd'/>");
    expect(xml).not.toContain('<interface');
    expect(notes).toContain('network interfaces removed');
  });

  it('refuses a restore whose disk the recorded domain does not have', () => {
    expect(() => restoredDomainXml(RECORDED, { ...spec, disks: [...spec.disks, { target: 'sdz', file: '/x.qcow2', format: 'qcow2' }] })).toThrow(/no disk with target sdz/);
  });

  it('makes a bootable minimal domain of a point without a configuration', () => {
    const xml = minimalDomainXml({ memoryMiB: 512, vcpus: 2, virtType: 'qemu' }, { ...spec, disks: [{ target: 'disk0', file: '/i/a.qcow2', format: 'qcow2' }, { target: 'disk1', file: '/i/b.qcow2', format: 'qcow2' }] });
    const info = parseDomainXml(xml);
    expect(info.name).toBe('web&restored');
    expect(info.disks.map((d) => [d.target, d.file])).toEqual([
      ['vda', '/i/a.qcow2'],
      ['vdb', '/i/b.qcow2'],
    ]);
    expect(info.guestAgentChannel).toBe(true);
    expect(xml).toContain("<memory unit='MiB'>512</memory>");
  });

  it('boots an overlay from the hub: the backing is the proxy socket, and I/O stops rather than fails while the hub is away', () => {
    const { xml } = restoredDomainXml(RECORDED, { ...spec, disks: [{ target: 'vda', file: '/d/vda.overlay.qcow2', format: 'qcow2', backing: { socket: '/d/vda.sock', exportName: 'r-vda' } }, spec.disks[1]] });
    const vda = /<disk[^>]*>((?:(?!<\/disk>)[\s\S])*?<target dev='vda'[\s\S]*?)<\/disk>/.exec(xml)![1];
    expect(vda).toContain("<driver name='qemu' type='qcow2' error_policy='stop' rerror_policy='stop'/>");
    expect(vda).toContain("<source file='/d/vda.overlay.qcow2'/><backingStore type='network'><format type='raw'/><source protocol='nbd' name='r-vda'><host transport='unix' socket='/d/vda.sock'/></source><backingStore/></backingStore>");
    expect(xml.match(/\serror_policy=/g)).toHaveLength(1);
    const minimal = minimalDomainXml({ memoryMiB: 256, vcpus: 1, virtType: 'qemu' }, { ...spec, disks: [{ target: 'disk0', file: '/d/o.qcow2', format: 'qcow2', backing: { socket: '/d/s.sock', exportName: 'e' } }] });
    expect(minimal).toContain("error_policy='stop' rerror_policy='stop'/><source file='/d/o.qcow2'/><backingStore type='network'>");
  });
});
