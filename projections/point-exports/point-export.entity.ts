import { Column, Entity, Index, PrimaryColumn } from 'typeorm';
import type { PointExportCloseReason, PointExportDisk } from '../../src/disk-images/point-export.events';

@Entity({ name: 'rm_point_exports' })
@Index(['restorePointId'])
export class PointExportView {
  @PrimaryColumn({ name: 'export_id', type: 'uuid' })
  exportId: string;

  @Column({ name: 'restore_point_id', type: 'text' })
  restorePointId: string;

  @Column({ name: 'vm_id', type: 'text' })
  vmId: string;

  @Column({ name: 'repository_id', type: 'uuid' })
  repositoryId: string;

  @Column({ name: 'hub_instance', type: 'text' })
  hubInstance: string;

  @Column({ type: 'boolean' })
  tls: boolean;

  @Column({ type: 'jsonb' })
  disks: PointExportDisk[];

  @Column({ type: 'text' })
  status: 'open' | 'closed';

  @Column({ name: 'opened_at', type: 'timestamptz' })
  openedAt: Date;

  @Column({ name: 'opened_by', type: 'text' })
  openedBy: string;

  @Column({ name: 'closed_at', type: 'timestamptz', nullable: true })
  closedAt: Date | null;

  @Column({ name: 'close_reason', type: 'text', nullable: true })
  closeReason: PointExportCloseReason | null;

  @Column({ name: 'close_detail', type: 'text', nullable: true })
  closeDetail: string | null;
}
