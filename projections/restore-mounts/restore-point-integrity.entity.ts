import { Column, Entity, PrimaryColumn } from 'typeorm';
import type { Integrity } from '../../src/restore-points/chain.aggregate';
import type { DamagedRange } from '../../src/restore-points/chain.events';

/**
 * The integrity of every restore point a verify has spoken about, as the chain decider has it
 * (integrityOf): mounts and their downloads show it. A point without a row was never verified.
 */
@Entity({ name: 'rm_restore_point_integrity' })
export class RestorePointIntegrityView {
  @PrimaryColumn({ name: 'restore_point_id', type: 'text' })
  restorePointId: string;

  @Column({ type: 'text' })
  status: Integrity;

  /** As the RestorePointVerified event wrote it (ISO 8601), so it reads exactly as the chain's. */
  @Column({ name: 'verified_at', type: 'text', nullable: true })
  verifiedAt: string | null;

  /** Every disk's damaged blocks the point reads, its own and those of points it reads through. */
  @Column({ type: 'jsonb' })
  damaged: DamagedRange[];

  @Column({ type: 'jsonb' })
  problems: string[];
}
