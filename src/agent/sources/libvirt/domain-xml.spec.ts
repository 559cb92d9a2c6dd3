import { backupSocket, backupXml, checkpointDisks, checkpointDisksWithoutBitmap, checkpointXml, decideLive, hasEmulatedTpm, holdsNoData, nvramPath, parseDomainXml, skipReason } from './domain-xml';

/** An instant recovery's disk as the live `virsh dumpxml` of libvirt 9.0 shows it while it still reads from the hub. */
const INSTANT_DISK = `<disk type='file' device='disk'>
      <driver name='qemu' type='qcow2'/>
      <source file='/srv/r-vda.qcow2' index='2'/>
      <backingStore type='network' index='1'>
        <format type='raw'/>
        <source protocol='nbd' name='vda' index='1'>
          <host transport='unix' socket='/var/lib/sendense/instant-1/vda.sock'/>
        </source>
        <backingStore/>
      </backingStore>
      <target dev='vda' bus='virtio'/>
    </disk>`;

/** Trimmed from `virsh dumpxml` / `checkpoint-dumpxml` / `backup-dumpxml` of libvirt 9.0. */
const DOMAIN = `<domain type='qemu' id='5'>
  <name>web&amp;db</name>
  <uuid>356048d8-23bd-48b0-8e80-080f6e097414</uuid>
  <devices>
    <disk type='file' device='disk'>
      <driver name='qemu' type='qcow2'/>
      <source file='/var/lib/vm/d0.qcow2' index='2'/>
      <target dev='vda' bus='virtio'/>
    </disk>
    <disk type='file' device='disk'>
      <driver name='qemu' type='raw'/>
      <source file='/var/lib/vm/d1.img' index='1'/>
      <target dev='vdb' bus='virtio'/>
    </disk>
    <disk type='block' device='disk'>
      <driver name='qemu' type='raw'/>
      <source dev='/dev/sdz'/>
      <target dev='vdc' bus='virtio'/>
    </disk>
    <disk type='file' device='cdrom'>
      <target dev='hdc' bus='ide'/>
      <readonly/>
    </disk>
    <channel type='unix'>
      <source mode='bind' path='/run/libvirt/qemu/channel/5-x/org.qemu.guest_agent.0'/>
      <target type='virtio' name='org.qemu.guest_agent.0' state='connected'/>
    </channel>
  </devices>
  <seclabel type='dynamic' model='dac' relabel='yes'>
    <label>+64055:+64055</label>
    <imagelabel>+64055:+64055</imagelabel>
  </seclabel>
</domain>`;

describe('libvirt XML', () => {
  it('reads uuid, name, disks, the qemu user and the guest agent channel of a domain', () => {
    const info = parseDomainXml(DOMAIN);
    expect(info).toMatchObject({ uuid: '356048d8-23bd-48b0-8e80-080f6e097414', name: 'web&db', qemuUser: { uid: 64055, gid: 64055 }, guestAgentChannel: true });
    expect(info.disks.map((d) => [d.target, d.type, d.device, d.format, d.file])).toEqual([
      ['vda', 'file', 'disk', 'qcow2', '/var/lib/vm/d0.qcow2'],
      ['vdb', 'file', 'disk', 'raw', '/var/lib/vm/d1.img'],
      ['vdc', 'block', 'disk', 'raw', null],
      ['hdc', 'file', 'cdrom', null, null],
    ]);
    expect(info.disks.map(skipReason)).toEqual([null, null, "type='block' disks are not supported (only file-backed images)", 'cdrom devices are not backed up']);
    // a block device holds data a restore would lack; a CD-ROM holds none of the guest's own
    expect(info.disks.map(holdsNoData)).toEqual([false, false, false, true]);
    const emptyDrive = parseDomainXml(DOMAIN.replace("<source file='/var/lib/vm/d1.img' index='1'/>", '')).disks[1];
    expect([skipReason(emptyDrive), holdsNoData(emptyDrive)]).toEqual(['the disk has no source file (empty drive)', true]);
    const network = parseDomainXml(DOMAIN.replace("<disk type='block' device='disk'>", "<disk type='network' device='disk'>")).disks[2];
    expect([skipReason(network), holdsNoData(network)]).toEqual(["type='network' disks are not supported (only file-backed images)", false]);
    expect(parseDomainXml(DOMAIN.replace(/<channel[\s\S]*<\/channel>/, '')).guestAgentChannel).toBe(false);
  });

  it("tells an instant recovery's disk still reading from the hub from a disk of its own", () => {
    expect(parseDomainXml(DOMAIN).disks.map((d) => d.readsFromNetwork)).toEqual([false, false, false, false]);
    const instant = parseDomainXml(DOMAIN.replace(/<disk type='file' device='disk'>[\s\S]*?<\/disk>/, INSTANT_DISK));
    expect(instant.disks.map((d) => [d.target, d.file, d.readsFromNetwork])).toEqual([['vda', '/srv/r-vda.qcow2', true], ['vdb', '/var/lib/vm/d1.img', false], ['vdc', null, false], ['hdc', null, false]]);
  });

  it('writes the pull-mode backup and the checkpoint, escaped', () => {
    expect(backupXml({ incremental: 'sendense-A', socket: "/s/it's.sock", disks: [{ target: 'vda', scratch: '/s/vda.scratch' }] })).toBe(
      "<domainbackup mode='pull'><incremental>sendense-A</incremental><server transport='unix' socket='/s/it&apos;s.sock'/><disks><disk name='vda' backup='yes' type='file'><scratch file='/s/vda.scratch'/></disk></disks></domainbackup>",
    );
    expect(backupXml({ incremental: null, socket: '/s', disks: [] })).not.toContain('incremental');
    expect(checkpointXml('sendense-B', ['vda', 'vdb'])).toBe("<domaincheckpoint><name>sendense-B</name><disks><disk name='vda' checkpoint='bitmap'/><disk name='vdb' checkpoint='bitmap'/></disks></domaincheckpoint>");
  });

  it("reads a checkpoint's disks (not those of the domain it embeds) and the running backup's socket", () => {
    const cp = `<domaincheckpoint>\n  <name>cp2</name>\n  <parent><name>cp1</name></parent>\n  <disks>\n    <disk name='vda' checkpoint='bitmap' bitmap='cp2'/>\n    <disk name='vdb' checkpoint='no'/>\n  </disks>\n  ${DOMAIN}\n</domaincheckpoint>`;
    expect(checkpointDisks(cp)).toEqual(['vda']);
    expect(backupSocket("<domainbackup mode='pull'>\n  <server transport='unix' socket='/a/job-1/nbd.sock'/>\n</domainbackup>")).toBe('/a/job-1/nbd.sock');
    expect(backupSocket('')).toBeNull();
  });

  it('finds the bitmaps qemu lost: libvirt sizes each bitmap qemu holds (checkpoint-dumpxml --size), a lost one has no size', () => {
    // as libvirt 9.0 printed them, before and after the domain's qemu was killed with SIGKILL and started again
    const healthy = `<domaincheckpoint>\n  <name>cp1</name>\n  <disks>\n    <disk name='vda' checkpoint='bitmap' bitmap='cp1' size='0'/>\n    <disk name='vdb' checkpoint='bitmap' bitmap='cp1' size='65536'/>\n    <disk name='hdc' checkpoint='no'/>\n  </disks>\n</domaincheckpoint>`;
    const lost = `<domaincheckpoint>\n  <name>cp1</name>\n  <disks>\n    <disk name='vda' checkpoint='bitmap' bitmap='cp1'/>\n    <disk name='vdb' checkpoint='bitmap' bitmap='cp1'/>\n    <disk name='hdc' checkpoint='no'/>\n  </disks>\n</domaincheckpoint>`;
    expect(checkpointDisksWithoutBitmap(healthy)).toEqual([]);
    expect(checkpointDisksWithoutBitmap(lost)).toEqual(['vda', 'vdb']);
    expect(checkpointDisks(lost)).toEqual(['vda', 'vdb']);
  });
});

describe('decideLive: full or incremental for a running domain', () => {
  const disks = [
    { target: 'vda', format: 'qcow2' },
    { target: 'vdb', format: 'qcow2' },
  ];
  it('continues from the checkpoint of the last recorded point when it covers every disk', () => {
    expect(decideLive({ disks, checkpoints: [{ name: 'sendense-A', disks: ['vda', 'vdb'] }] }, 'sendense-A')).toEqual({ mode: 'incremental', reason: null });
  });
  it('takes a full, saying why, when there is no point, a raw disk, no checkpoint, or a disk without a bitmap', () => {
    expect(decideLive({ disks, checkpoints: [] }, null).reason).toBe('no previous restore point to continue from');
    expect(decideLive({ disks: [...disks, { target: 'vdc', format: 'raw' }], checkpoints: [{ name: 'sendense-A', disks: ['vda', 'vdb'] }] }, 'sendense-A').reason).toMatch(/vdc is raw/);
    expect(decideLive({ disks, checkpoints: [{ name: 'sendense-B', disks: ['vda', 'vdb'] }] }, 'sendense-A')).toEqual({ mode: 'full', reason: expect.stringMatching(/checkpoint sendense-A does not exist/) });
    expect(decideLive({ disks, checkpoints: [{ name: 'sendense-A', disks: ['vda'] }] }, 'sendense-A').reason).toMatch(/no bitmap on vdb/);
  });
  it('takes a full when qemu lost the bitmaps of the checkpoint libvirt still lists (an incremental from it would fail in backup-begin)', () => {
    expect(decideLive({ disks, checkpoints: [{ name: 'sendense-A', disks: ['vda', 'vdb'], lostBitmaps: ['vda', 'vdb'] }] }, 'sendense-A')).toEqual({ mode: 'full', reason: expect.stringMatching(/^checkpoint sendense-A is broken: qemu holds no bitmap for vda, vdb/) });
    expect(decideLive({ disks, checkpoints: [{ name: 'sendense-A', disks: ['vda', 'vdb'], lostBitmaps: [] }] }, 'sendense-A').mode).toBe('incremental');
  });

  it('finds the UEFI variables file and an emulated TPM, and nothing in a domain without them', () => {
    const uefi = `<domain type='kvm'><name>u</name><uuid>356048d8-23bd-48b0-8e80-080f6e097414</uuid>
  <os firmware='efi'><type arch='x86_64' machine='pc-q35-7.2'>hvm</type>
    <loader readonly='yes' secure='yes' type='pflash'>/usr/share/OVMF/OVMF_CODE_4M.ms.fd</loader>
    <nvram template='/usr/share/OVMF/OVMF_VARS_4M.ms.fd'>/var/lib/libvirt/qemu/nvram/u&amp;1_VARS.fd</nvram>
  </os>
  <devices><tpm model='tpm-crb'><backend type='emulator' version='2.0'/></tpm></devices></domain>`;
    expect(nvramPath(uefi)).toBe('/var/lib/libvirt/qemu/nvram/u&1_VARS.fd');
    expect(hasEmulatedTpm(uefi)).toBe(true);
    expect(nvramPath(DOMAIN)).toBeNull();
    expect(hasEmulatedTpm(DOMAIN)).toBe(false);
    expect(hasEmulatedTpm(`<domain><devices><tpm model='tpm-tis'><backend type='passthrough'><device path='/dev/tpm0'/></backend></tpm></devices></domain>`)).toBe(false);
  });
});
