import { MountVolume, ReleaseReason } from '../restore-mount.events';

/** A restore mount as the API shows it. */
export interface RestoreMountDescription {
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
