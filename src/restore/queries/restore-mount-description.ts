import { MountIntegrity } from '../mount-integrity';
import { MountVolume, ReleaseReason } from '../restore-mount.events';

/** A restore mount as the API shows it, with the restore point's integrity as it is now (not when it was mounted). */
export interface RestoreMountDescription extends MountIntegrity {
  mountId: string;
  status: 'mounting' | 'ready' | 'failed' | 'released';
  restorePointId: string;
  vmId: string;
  repositoryId: string;
  diskId: string;
  partitionTable: string | null;
  diskSize: number | null;
  volumes: MountVolume[];
  error: string | null;
  releaseReason: ReleaseReason | null;
  releaseDetail: string | null;
  requestedBy: string;
  requestedAt: Date;
  readyAt: Date | null;
  endedAt: Date | null;
  idleTimeoutSeconds: number;
  lastAccessAt: Date;
  expiresAt: Date | null;
  downloads: { files: number; archives: number; bytes: number };
}
