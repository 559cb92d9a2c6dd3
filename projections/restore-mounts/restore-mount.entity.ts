import { Column, Entity, Index, PrimaryColumn, ValueTransformer } from 'typeorm';
import type { MountVolume, ReleaseReason } from '../../src/restore/restore-mount.events';

/** bigint columns come back from pg as strings; byte counts of restore mounts fit a double exactly. */
const bigintNumber: ValueTransformer = {
  to: (value: number | null) => value,
  from: (value: string | null) => (value === null ? null : Number(value)),
};

@Entity({ name: 'rm_restore_mounts' })
@Index(['status'])
export class RestoreMountView {
  @PrimaryColumn({ name: 'mount_id', type: 'uuid' })
  mountId: string;

  @Column({ name: 'restore_point_id', type: 'text' })
  restorePointId: string;

  @Column({ name: 'vm_id', type: 'text' })
  vmId: string;

  @Column({ name: 'repository_id', type: 'uuid' })
  repositoryId: string;

  @Column({ name: 'disk_id', type: 'text' })
  diskId: string;

  /** Real path of the mounted qcow2. */
  @Column({ type: 'text' })
  file: string;

  /** The file and its backing files: what a delete or merge must not touch while the mount is active. */
  @Column({ name: 'chain_files', type: 'text', array: true })
  chainFiles: string[];

  @Column({ name: 'hub_instance', type: 'text' })
  hubInstance: string;

  @Column({ type: 'text' })
  status: 'mounting' | 'ready' | 'failed' | 'released';

  @Column({ name: 'partition_table', type: 'text', nullable: true })
  partitionTable: string | null;

  @Column({ name: 'disk_size', type: 'bigint', nullable: true, transformer: bigintNumber })
  diskSize: number | null;

  @Column({ type: 'jsonb' })
  volumes: MountVolume[];

  /** Why the mount failed. */
  @Column({ type: 'text', nullable: true })
  error: string | null;

  @Column({ name: 'release_reason', type: 'text', nullable: true })
  releaseReason: ReleaseReason | null;

  @Column({ name: 'release_detail', type: 'text', nullable: true })
  releaseDetail: string | null;

  @Column({ name: 'requested_by', type: 'text' })
  requestedBy: string;

  @Column({ name: 'requested_at', type: 'timestamptz' })
  requestedAt: Date;

  @Column({ name: 'ready_at', type: 'timestamptz', nullable: true })
  readyAt: Date | null;

  /** When it failed or was released. */
  @Column({ name: 'ended_at', type: 'timestamptz', nullable: true })
  endedAt: Date | null;

  @Column({ name: 'idle_timeout_seconds', type: 'int' })
  idleTimeoutSeconds: number;

  @Column({ name: 'last_access_at', type: 'timestamptz' })
  lastAccessAt: Date;

  /** lastAccessAt + the idle timeout while ready; null otherwise. */
  @Column({ name: 'expires_at', type: 'timestamptz', nullable: true })
  expiresAt: Date | null;

  @Column({ name: 'file_downloads', type: 'int' })
  fileDownloads: number;

  @Column({ name: 'archive_downloads', type: 'int' })
  archiveDownloads: number;

  @Column({ name: 'bytes_downloaded', type: 'bigint', transformer: bigintNumber })
  bytesDownloaded: number;
}
