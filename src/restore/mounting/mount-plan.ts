import { DeviceMapperSupport, lvmReason } from './device-mapper';
import type { ProbeResult } from './filesystem-probe';

/** How one volume gets mounted: a kernel driver, a FUSE driver, or not at all (with the reason shown to the user). */
export type MountPlan =
  | { kind: 'kernel'; fsType: string; options: string }
  | { kind: 'fuse'; program: string; args: (device: string, mountPoint: string) => string[] }
  | { kind: 'unsupported'; reason: string };

/**
 * nodev above all: the image is untrusted, and a device node in it (say,
 * major 8 minor 0) would otherwise open the host's own disk when a user
 * downloads or archives it. nosuid and noexec because nothing in a restore
 * point is ever meant to run here. FUSE mounts get nosuid,nodev by default.
 */
const SAFE = 'ro,nodev,nosuid,noexec';

/**
 * Options chosen so that mounting never writes, even to a filesystem the
 * VM left dirty (a backup is a crash-consistent snapshot, so it usually is):
 * ext* "noload" skips journal replay, XFS "norecovery" skips log recovery
 * and "nouuid" lets two restore points of one disk be mounted at once,
 * btrfs "rescue=nologreplay" skips the log tree. The loop device underneath
 * is read-only as well.
 */
const KERNEL: Record<string, { fsType: string; options: string }> = {
  ext2: { fsType: 'ext4', options: `${SAFE},noload` },
  ext3: { fsType: 'ext4', options: `${SAFE},noload` },
  ext4: { fsType: 'ext4', options: `${SAFE},noload` },
  xfs: { fsType: 'xfs', options: `${SAFE},norecovery,nouuid` },
  btrfs: { fsType: 'btrfs', options: `${SAFE},rescue=nologreplay` },
};

/**
 * This kernel has no vfat or ntfs driver, so those go through FUSE. Both
 * daemonise once mounted, so the command returning 0 means the tree is
 * there. fusefat is read-only unless given "rw+"; "-o ro" is said anyway.
 */
const FUSE: Record<string, { program: string; args: (device: string, mountPoint: string) => string[] }> = {
  vfat: { program: 'fusefat', args: (device, mountPoint) => ['-o', 'ro', device, mountPoint] },
  ntfs: { program: 'ntfs-3g', args: (device, mountPoint) => ['-o', 'ro', device, mountPoint] },
};

const UNSUPPORTED_REASONS: Record<string, string> = {
  swap: 'swap space holds no files',
  crypto_LUKS: 'encrypted (LUKS) volume: unlocking is not supported',
  linux_raid_member: 'software RAID member: assembling arrays is not supported',
  BitLocker: 'BitLocker-encrypted volume: unlocking is not supported',
};

/** What was found on this host that decides whether a volume can be mounted at all; looked up only when a volume needs it. */
export interface HostFacts {
  deviceMapper?: DeviceMapperSupport;
}

export function planMount(probe: ProbeResult, host: HostFacts = {}): MountPlan {
  if (probe.ambiguous) return { kind: 'unsupported', reason: 'several filesystem signatures were found; refusing to guess which one is current' };
  if (probe.type === null) {
    if (probe.partitionTableType) return { kind: 'unsupported', reason: `holds a nested "${probe.partitionTableType}" partition table, which is not supported` };
    return { kind: 'unsupported', reason: 'no filesystem signature was recognised' };
  }
  const kernel = KERNEL[probe.type];
  if (kernel) return { kind: 'kernel', ...kernel };
  const fuse = FUSE[probe.type];
  if (fuse) return { kind: 'fuse', ...fuse };
  if (probe.type === 'LVM2_member') {
    return { kind: 'unsupported', reason: host.deviceMapper ? lvmReason(host.deviceMapper) : 'LVM physical volume: activating its logical volumes is not supported' };
  }
  return { kind: 'unsupported', reason: UNSUPPORTED_REASONS[probe.type] ?? `filesystem type "${probe.type}" is not supported` };
}
