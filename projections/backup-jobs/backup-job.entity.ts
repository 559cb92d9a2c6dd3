import type { DiskLeftOut } from '../../src/wire/backup-protocol';
import { Column, Entity, Index, PrimaryColumn } from 'typeorm';

export interface DiskProgressView {
  diskId: string;
  bytesDone: number;
  bytesPlanned: number;
  rate: number;
  bytesWritten: number;
  done: boolean;
}

@Entity({ name: 'rm_backup_jobs' })
@Index(['vmId', 'requestedAt'])
export class BackupJobView {
  @PrimaryColumn({ name: 'job_id', type: 'uuid' })
  jobId: string;

  @Column({ name: 'vm_id', type: 'text' })
  vmId: string;

  @Column({ name: 'agent_id', type: 'uuid' })
  agentId: string;

  @Column({ name: 'repository_id', type: 'uuid' })
  repositoryId: string;

  @Column({ name: 'requested_type', type: 'text' })
  requestedType: string;

  @Column({ type: 'text', nullable: true })
  type: string | null;

  @Column({ name: 'type_reason', type: 'text', nullable: true })
  typeReason: string | null;

  @Column({ type: 'text' })
  phase: string;

  @Column({ name: 'restore_point_id', type: 'text', nullable: true })
  restorePointId: string | null;

  @Column({ type: 'jsonb' })
  disks: DiskProgressView[];

  /** Disks of the VM the job's point does not hold: the agent cannot read them. */
  @Column({ name: 'disks_left_out', type: 'jsonb' })
  disksLeftOut: DiskLeftOut[];

  @Column({ name: 'bytes_written', type: 'bigint' })
  bytesWritten: string;

  @Column({ type: 'text', nullable: true })
  error: string | null;

  @Column({ name: 'failed_phase', type: 'text', nullable: true })
  failedPhase: string | null;

  @Column({ name: 'cancel_requested', type: 'boolean' })
  cancelRequested: boolean;

  @Column({ name: 'requested_at', type: 'timestamptz' })
  requestedAt: Date;

  @Column({ name: 'started_at', type: 'timestamptz', nullable: true })
  startedAt: Date | null;

  @Column({ name: 'finished_at', type: 'timestamptz', nullable: true })
  finishedAt: Date | null;
}

/** One row per finished job: what the jobs report aggregates. */
@Entity({ name: 'rm_backup_outcomes' })
@Index(['finishedAt'])
export class BackupOutcomeView {
  @PrimaryColumn({ name: 'job_id', type: 'uuid' })
  jobId: string;

  @Column({ name: 'vm_id', type: 'text' })
  vmId: string;

  @Column({ type: 'text' })
  outcome: 'completed' | 'failed';

  @Column({ type: 'bigint' })
  bytes: string;

  @Column({ name: 'duration_ms', type: 'bigint' })
  durationMs: string;

  @Column({ name: 'finished_at', type: 'timestamptz' })
  finishedAt: Date;
}
