import type { Integrity } from '../chain.aggregate';
import type { DiskLeftOut } from '../../wire/backup-protocol';
import { ConfigurationRef, DamagedRange, DigestCoverage, PointDisk, PointSource } from '../chain.events';

/** A restore point as the read model holds it. */
export interface RestorePointRecord {
  restorePointId: string;
  vmId: string;
  repositoryId: string;
  backupId: string | null;
  type: 'full' | 'incremental';
  parentId: string | null;
  createdAt: Date;
  disks: PointDisk[];
  /** `recycled`: deleted within the grace period; its files stay until `purgeAfter`, and an admin can undelete it. */
  status: 'available' | 'deleting' | 'recycled';
  recycledAt: Date | null;
  purgeAfter: Date | null;
  recycledBy: string | null;
  chainPosition: string;
  verifiedAt: Date | null;
  verifyOk: boolean | null;
  verifyProblems: string[] | null;
  verifyWarnings: string[] | null;
  integrity: Integrity;
  damaged: DamagedRange[];
  verifyDigests: DigestCoverage | null;
  consistency: 'application' | 'crash' | null;
  consistencyReason: string | null;
  freezeMs: number | null;
  configuration: ConfigurationRef | null;
  disksLeftOut: DiskLeftOut[];
  source: PointSource | null;
}
