import { Column, Entity, Index, PrimaryColumn } from 'typeorm';

@Entity({ name: 'rm_nbd_leases' })
@Index(['host', 'status'])
export class NbdLeaseView {
  @PrimaryColumn({ name: 'lease_id', type: 'uuid' })
  leaseId: string;

  @Column({ type: 'text' })
  host: string;

  @Column({ type: 'int' })
  port: number;

  @Column({ name: 'job_id', type: 'text' })
  jobId: string;

  @Column({ name: 'disk_id', type: 'text' })
  diskId: string;

  @Column({ type: 'text' })
  status: 'active' | 'released';

  @Column({ name: 'allocated_at', type: 'timestamptz' })
  allocatedAt: Date;

  @Column({ name: 'allocated_by', type: 'text' })
  allocatedBy: string;

  @Column({ name: 'released_at', type: 'timestamptz', nullable: true })
  releasedAt: Date | null;

  @Column({ name: 'release_reason', type: 'text', nullable: true })
  releaseReason: string | null;
}
