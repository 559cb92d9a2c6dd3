import { Column, Entity, Index, PrimaryColumn } from 'typeorm';
import type { Integrity } from '../../src/restore-points/chain.aggregate';
import type { DiskLeftOut } from '../../src/wire/backup-protocol';
import type { ConfigurationRef, DamagedRange, DigestCoverage, PointDisk, PointSource } from '../../src/restore-points/chain.events';

@Entity({ name: 'rm_restore_points' })
@Index(['vmId', 'repositoryId'])
export class RestorePointView {
  @PrimaryColumn({ name: 'restore_point_id', type: 'text' })
  restorePointId: string;

  @Column({ name: 'vm_id', type: 'text' })
  vmId: string;

  @Column({ name: 'repository_id', type: 'uuid' })
  repositoryId: string;

  @Column({ name: 'backup_id', type: 'text', nullable: true })
  backupId: string | null;

  @Column({ type: 'text' })
  type: 'full' | 'incremental';

  @Column({ name: 'parent_id', type: 'text', nullable: true })
  parentId: string | null;

  @Column({ name: 'created_at', type: 'timestamptz' })
  createdAt: Date;

  @Column({ type: 'jsonb' })
  disks: PointDisk[];

  @Column({ type: 'text' })
  status: 'available' | 'deleting' | 'recycled';

  @Column({ name: 'recycled_at', type: 'timestamptz', nullable: true })
  recycledAt: Date | null;

  @Column({ name: 'purge_after', type: 'timestamptz', nullable: true })
  purgeAfter: Date | null;

  @Column({ name: 'recycled_by', type: 'text', nullable: true })
  recycledBy: string | null;

  /** Order in the chain: the position of the event that added it. */
  @Column({ name: 'chain_position', type: 'text' })
  chainPosition: string;

  @Column({ name: 'verified_at', type: 'timestamptz', nullable: true })
  verifiedAt: Date | null;

  @Column({ name: 'verify_ok', type: 'boolean', nullable: true })
  verifyOk: boolean | null;

  @Column({ name: 'verify_problems', type: 'jsonb', nullable: true })
  verifyProblems: string[] | null;

  @Column({ name: 'verify_warnings', type: 'jsonb', nullable: true })
  verifyWarnings: string[] | null;

  /** As the chain decider has it (integrityOf): verified by content, unverified, or corrupt for good. */
  @Column({ type: 'text', default: 'unverified' })
  integrity: Integrity;

  /** Damaged blocks the point reads: its own and those of points it reads through. */
  @Column({ type: 'jsonb', default: () => "'[]'" })
  damaged: DamagedRange[];

  /** How much of the point's content the last verify compared with digests. */
  @Column({ name: 'verify_digests', type: 'text', nullable: true })
  verifyDigests: DigestCoverage | null;

  /** As the backup recorded it: `application` (guest frozen), `crash`, or null when the source could not tell. */
  @Column({ type: 'text', nullable: true })
  consistency: 'application' | 'crash' | null;

  @Column({ name: 'consistency_reason', type: 'text', nullable: true })
  consistencyReason: string | null;

  @Column({ name: 'freeze_ms', type: 'integer', nullable: true })
  freezeMs: number | null;

  /** The VM's configuration file the point holds, or null. */
  @Column({ type: 'jsonb', nullable: true })
  configuration: ConfigurationRef | null;

  /** Disks of the VM that hold data this point does not: its source could not read them. */
  @Column({ name: 'disks_left_out', type: 'jsonb' })
  disksLeftOut: DiskLeftOut[];

  /** For a point copied from another hub: which hub, sync job and run, and the bytes received; null for a point backed up here. */
  @Column({ type: 'jsonb', nullable: true })
  source: PointSource | null;
}
