/** One partition (or the whole disk) of a mounted restore point, as the API reports it. */
export interface RestoreVolume {
  /** "p1", "p5"... or "disk" for a disk without a partition table. */
  id: string;
  index: number;
  /** Byte offset and length on the disk. */
  start: number;
  size: number;
  /** blkid's name for what it found (ext4, xfs, vfat, ntfs, LVM2_member...), null if nothing. */
  fsType: string | null;
  label: string | null;
  uuid: string | null;
  partitionType: string | null;
  partitionName: string | null;
  /** Where its files are, for resolveInsideVolume and friends; null unless mounted. */
  mountPath: string | null;
  status: 'mounted' | 'unsupported' | 'failed';
  reason?: string;
}

export interface MountedRestorePoint {
  mountId: string;
  imageFile: string;
  workDir: string;
  /** "gpt", "dos", or "none" for a disk without a partition table. */
  partitionTable: string;
  diskSize: number;
  volumes: RestoreVolume[];
  mountedAt: string;
}
