import type { Integrity } from '../restore-points/chain.aggregate';
import type { ConfigurationRef, PointDisk } from '../restore-points/chain.events';
import type { DiskLeftOut } from '../wire/backup-protocol';

/** What GET /api/v1/sync/restore-points answers: a repository's points, each chain oldest first. */
export interface SyncPointList {
  repositoryId: string;
  points: {
    restorePointId: string;
    vmId: string;
    backupId: string | null;
    type: 'full' | 'incremental';
    parentId: string | null;
    createdAt: string;
    disks: PointDisk[];
    consistency: 'application' | 'crash' | null;
    consistencyReason: string | null;
    freezeMs: number | null;
    configuration: ConfigurationRef | null;
    integrity: Integrity;
    /** Disks of the VM the point does not hold (its source could not read them); absent from hubs older than it. */
    disksLeftOut?: DiskLeftOut[];
  }[];
}

/** What GET /api/v1/identity answers: how another hub or an agent recognises this hub. */
export interface HubIdentity {
  /** The hub's data directory's instance id. */
  hubInstance: string;
  ssh: { port: number; hostKeyFingerprint: string };
  /** The API listener: HTTPS with this certificate (clients pin its fingerprint), or plain HTTP on loopback. Absent from hubs older than TLS. */
  api?: { tls: boolean; certificateFingerprint: string | null };
}
