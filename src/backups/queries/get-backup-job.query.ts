import { Query } from '@nestjs/cqrs';
import type { DiskLeftOut } from '../../wire/backup-protocol';

export interface BackupJobDiskDto {
  diskId: string;
  bytesDone: number;
  bytesPlanned: number;
  rate: number;
  bytesWritten: number;
  done: boolean;
}

export interface BackupJobDto {
  jobId: string;
  vmId: string;
  agentId: string;
  repositoryId: string;
  status: 'queued' | 'running' | 'completed' | 'failed';
  phase: string;
  requestedType: string;
  type: string | null;
  typeReason: string | null;
  restorePointId: string | null;
  disks: BackupJobDiskDto[];
  /** Disks of the VM the job's point does not hold: its agent cannot read them. */
  disksLeftOut: DiskLeftOut[];
  bytesWritten: number;
  error: string | null;
  failedPhase: string | null;
  cancelRequested: boolean;
  requestedAt: Date;
  startedAt: Date | null;
  finishedAt: Date | null;
}

/** One job as the API shows it; not found when the read model has no such job. */
export class GetBackupJobQuery extends Query<BackupJobDto> {
  constructor(readonly jobId: string) {
    super();
  }
}
