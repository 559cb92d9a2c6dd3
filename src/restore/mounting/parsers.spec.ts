import { promises as fs } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { lvmReason, probeDeviceMapper } from './device-mapper';
import { parseBlkidExport } from './filesystem-probe';
import { parseProcMounts } from './host-mounts';
import { parseLosetupJson } from './loop-devices';
import { planMount } from './mount-plan';
import { nbdUnixUri } from './nbdfuse-file';
import { parseSfdiskJson } from './partition-table';
import { qemuNbdArgs } from './qemu-nbd-export';
import { isWithin } from './work-dir-layout';

const MiB = 1024 * 1024;
const probe = (type: string | null, extra: object = {}) => ({ type, usage: 'filesystem', label: null, uuid: null, partitionTableType: null, ambiguous: false, ...extra });

describe('parseSfdiskJson', () => {
  it('reads GPT partitions with byte offsets, names and types', () => {
    const json = JSON.stringify({
      partitiontable: {
        label: 'gpt',
        device: '/w/nbd/disk',
        unit: 'sectors',
        sectorsize: 512,
        partitions: [
          { node: '/w/nbd/disk1', start: 2048, size: 81920, type: '0FC63DAF-8483-4772-8E79-3D69D8477DE4', name: 'root' },
          { node: '/w/nbd/disk2', start: 83968, size: 40960, type: 'C12A7328-F81F-11D2-BA4B-00A0C93EC93B' },
        ],
      },
    });
    expect(parseSfdiskJson(json, 128 * MiB)).toEqual({
      table: 'gpt',
      diskSize: 128 * MiB,
      regions: [
        { id: 'p1', index: 1, start: MiB, size: 40 * MiB, partitionType: '0FC63DAF-8483-4772-8E79-3D69D8477DE4', partitionName: 'root' },
        { id: 'p2', index: 2, start: 83968 * 512, size: 20 * MiB, partitionType: 'C12A7328-F81F-11D2-BA4B-00A0C93EC93B', partitionName: null },
      ],
    });
  });

  it('skips the MBR extended container but keeps its logical partitions with their numbers', () => {
    const json = JSON.stringify({
      partitiontable: {
        label: 'dos',
        device: 'disk0',
        partitions: [
          { node: 'disk0p1', start: 2048, size: 2048, type: '83' },
          { node: 'disk0p2', start: 4096, size: 8192, type: 'f' },
          { node: 'disk0p5', start: 6144, size: 2048, type: '7' },
        ],
      },
    });
    const layout = parseSfdiskJson(json, 8 * MiB);
    expect(layout.regions.map((r) => [r.id, r.index, r.start])).toEqual([
      ['p1', 1, MiB],
      ['p5', 5, 3 * MiB],
    ]);
  });
});

describe('parseBlkidExport', () => {
  it('unescapes values', () => {
    expect(parseBlkidExport('DEVNAME=x\nUUID=abc\nVERSION=LVM2\\ 001\nTYPE=LVM2_member\nLABEL=my\\ disk\n')).toEqual({
      DEVNAME: 'x',
      UUID: 'abc',
      VERSION: 'LVM2 001',
      TYPE: 'LVM2_member',
      LABEL: 'my disk',
    });
  });
});

describe('planMount', () => {
  it('mounts ext*, XFS and btrfs with the kernel, read-only, never replaying journals, never honouring device nodes', () => {
    for (const type of ['ext2', 'ext3', 'ext4']) expect(planMount(probe(type))).toEqual({ kind: 'kernel', fsType: 'ext4', options: 'ro,nodev,nosuid,noexec,noload' });
    expect(planMount(probe('xfs'))).toEqual({ kind: 'kernel', fsType: 'xfs', options: 'ro,nodev,nosuid,noexec,norecovery,nouuid' });
    expect(planMount(probe('btrfs'))).toMatchObject({ kind: 'kernel', fsType: 'btrfs' });
  });

  it('mounts vfat and NTFS through FUSE drivers with -o ro', () => {
    const vfat = planMount(probe('vfat'));
    const ntfs = planMount(probe('ntfs'));
    expect(vfat.kind === 'fuse' && [vfat.program, ...vfat.args('/dev/loop9', '/m')]).toEqual(['fusefat', '-o', 'ro', '/dev/loop9', '/m']);
    expect(ntfs.kind === 'fuse' && [ntfs.program, ...ntfs.args('/dev/loop9', '/m')]).toEqual(['ntfs-3g', '-o', 'ro', '/dev/loop9', '/m']);
  });

  it('explains what it cannot mount', () => {
    const noDeviceMapper = { available: false, findings: ['/dev/mapper/control is missing', '/proc/misc lists no device-mapper driver'] };
    expect(planMount(probe('LVM2_member'), { deviceMapper: noDeviceMapper })).toEqual({ kind: 'unsupported', reason: expect.stringContaining('device-mapper is not available on this host') });
    expect(planMount(probe(null))).toEqual({ kind: 'unsupported', reason: 'no filesystem signature was recognised' });
    expect(planMount(probe(null, { ambiguous: true }))).toMatchObject({ kind: 'unsupported', reason: expect.stringContaining('several filesystem signatures') });
    expect(planMount(probe(null, { partitionTableType: 'dos' }))).toMatchObject({ kind: 'unsupported', reason: expect.stringContaining('nested "dos" partition table') });
    expect(planMount(probe('zfs_member'))).toEqual({ kind: 'unsupported', reason: 'filesystem type "zfs_member" is not supported' });
  });
});

describe('the LVM reason', () => {
  it('names what was checked on this host', () => {
    const reason = lvmReason({ available: false, findings: ['/dev/mapper/control is missing', '/proc/misc lists no device-mapper driver'] });
    expect(reason).toBe(
      'LVM physical volume: device-mapper is not available on this host (/dev/mapper/control is missing; /proc/misc lists no device-mapper driver), so its logical volumes cannot be activated',
    );
    expect(lvmReason({ available: true, findings: ['/dev/mapper/control exists'] })).toMatch(/activating its logical volumes is not supported \(device-mapper itself is there: \/dev\/mapper\/control exists\)/);
  });

  it('is looked up under the given root: control node, /proc/misc and the dm_mod module', async () => {
    const root = await fs.mkdtemp(join(tmpdir(), 'sendense-dm-'));
    try {
      await fs.mkdir(join(root, 'proc'));
      await fs.writeFile(join(root, 'proc/misc'), '229 fuse\n237 loop-control\n');
      expect(await probeDeviceMapper(root)).toEqual({
        available: false,
        findings: ['/dev/mapper/control is missing', '/proc/misc lists no device-mapper driver', 'the dm_mod kernel module is not loaded (no /sys/module/dm_mod)'],
      });
      await fs.mkdir(join(root, 'dev/mapper'), { recursive: true });
      await fs.writeFile(join(root, 'dev/mapper/control'), '');
      await fs.writeFile(join(root, 'proc/misc'), '229 fuse\n236 device-mapper\n');
      await fs.mkdir(join(root, 'sys/module/dm_mod'), { recursive: true });
      expect(await probeDeviceMapper(root)).toEqual({
        available: true,
        findings: ['/dev/mapper/control exists', '/proc/misc lists device-mapper', 'the dm_mod kernel module is present'],
      });
    } finally {
      await fs.rm(root, { recursive: true, force: true });
    }
  });
});

describe('host state parsers', () => {
  it('decodes /proc/mounts octal escapes', () => {
    const [mount] = parseProcMounts('/dev/loop3 /data/restore\\040one/volumes/p1 ext4 ro,relatime,norecovery 0 0\n');
    expect(mount).toEqual({ source: '/dev/loop3', mountPoint: '/data/restore one/volumes/p1', fsType: 'ext4', options: ['ro', 'relatime', 'norecovery'] });
  });

  it('reads losetup JSON, including deleted backing files and no devices at all', () => {
    expect(parseLosetupJson('')).toEqual([]);
    expect(parseLosetupJson('{"loopdevices": []}')).toEqual([]);
    expect(parseLosetupJson('{"loopdevices":[{"name":"/dev/loop1","back-file":"/w/nbd/disk (deleted)","offset":1048576,"sizelimit":4096,"ro":true}]}')).toEqual([
      { name: '/dev/loop1', backFile: '/w/nbd/disk', offset: 1048576, sizeLimit: 4096, readOnly: true },
    ]);
  });

  it('matches paths on component boundaries', () => {
    expect(isWithin('/r/a', '/r/a')).toBe(true);
    expect(isWithin('/r/a', '/r/a/x')).toBe(true);
    expect(isWithin('/r/a/', '/r/a/x')).toBe(true);
    expect(isWithin('/r/a', '/r/ab')).toBe(false);
  });
});

describe('helper command lines', () => {
  it('exports read-only, persistent, multi-connection, on a Unix socket', () => {
    expect(qemuNbdArgs('/repo/rp-2.qcow2', '/w/qemu-nbd.sock')).toEqual(['-r', '--aio=io_uring', '--persistent', '--shared=8', '-k', '/w/qemu-nbd.sock', '-x', 'rp', '-f', 'qcow2', '/repo/rp-2.qcow2']);
  });

  it('percent-encodes the socket path in the NBD URI', () => {
    expect(nbdUnixUri('/data/my restore/a&b/qemu-nbd.sock')).toBe('nbd+unix:///rp?socket=/data/my%20restore/a%26b/qemu-nbd.sock');
  });
});
