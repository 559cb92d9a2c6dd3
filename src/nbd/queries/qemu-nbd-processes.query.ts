import { Query } from '@nestjs/cqrs';

export interface QemuNbdProcessSummary {
  leaseId: string;
  port: number;
  pid: number | null;
  file: string;
  exportName: string;
  jobId: string;
  diskId: string;
  state: 'starting' | 'running' | 'exited' | 'stopped';
  exitCode: number | null;
  signal: string | null;
  error: string | null;
  startedAt: Date | null;
  endedAt: Date | null;
}

/** Every qemu-nbd any hub process on this database ran, oldest request first. */
export class QemuNbdProcessesQuery extends Query<QemuNbdProcessSummary[]> {}
