import { Column, Entity, PrimaryColumn } from 'typeorm';

@Entity({ name: 'rm_qemu_nbd_processes' })
export class QemuNbdProcessView {
  @PrimaryColumn({ name: 'lease_id', type: 'uuid' })
  leaseId: string;

  @Column({ type: 'int' })
  port: number;

  @Column({ type: 'int', nullable: true })
  pid: number | null;

  @Column({ type: 'text' })
  file: string;

  @Column({ name: 'export_name', type: 'text' })
  exportName: string;

  @Column({ name: 'job_id', type: 'text' })
  jobId: string;

  @Column({ name: 'disk_id', type: 'text' })
  diskId: string;

  @Column({ name: 'read_only', type: 'boolean' })
  readOnly: boolean;

  @Column({ type: 'text' })
  state: 'starting' | 'running' | 'exited' | 'stopped';

  @Column({ name: 'exit_code', type: 'int', nullable: true })
  exitCode: number | null;

  @Column({ type: 'text', nullable: true })
  signal: string | null;

  @Column({ name: 'error', type: 'text', nullable: true })
  error: string | null;

  @Column({ name: 'requested_at', type: 'timestamptz' })
  requestedAt: Date;

  @Column({ name: 'started_at', type: 'timestamptz', nullable: true })
  startedAt: Date | null;

  @Column({ name: 'ended_at', type: 'timestamptz', nullable: true })
  endedAt: Date | null;
}
