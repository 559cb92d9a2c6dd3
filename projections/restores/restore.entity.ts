import { Column, Entity, Index, PrimaryColumn } from 'typeorm';
import type { RestoreDiskState } from '../../src/vm-restore/restore.aggregate';
import type { KnownDamage, RestorePhase } from '../../src/vm-restore/restore.events';
import type { RestoreDrill } from '../../src/vm-restore/queries/restore.record';
import type { DamagedBlock, RestoreTarget } from '../../src/wire/restore-protocol';

@Entity({ name: 'rm_restores' })
@Index(['vmId'])
export class RestoreView {
  @PrimaryColumn({ name: 'restore_id', type: 'uuid' })
  restoreId: string;

  @Column({ name: 'restore_point_id', type: 'text' })
  restorePointId: string;

  @Column({ name: 'vm_id', type: 'text' })
  vmId: string;

  @Column({ name: 'repository_id', type: 'uuid' })
  repositoryId: string;

  @Column({ name: 'agent_id', type: 'uuid' })
  agentId: string;

  @Column({ type: 'text' })
  mode: 'full' | 'instant';

  @Column({ type: 'jsonb' })
  target: RestoreTarget;

  @Column({ type: 'text' })
  status: 'running' | 'completed' | 'failed' | 'cancelled';

  @Column({ type: 'text' })
  phase: RestorePhase;

  @Column({ type: 'jsonb' })
  disks: RestoreDiskState[];

  @Column({ type: 'jsonb', nullable: true })
  domain: { name: string; uuid: string; started?: boolean } | null;

  /** Why an instant recovery's background copy waits, while it does (InstantRecoveryStalled). */
  @Column({ type: 'text', nullable: true })
  stalled: string | null;

  @Column({ type: 'text', nullable: true })
  error: string | null;

  @Column({ type: 'jsonb' })
  damaged: DamagedBlock[];

  @Column({ name: 'known_damage', type: 'jsonb' })
  knownDamage: KnownDamage[];

  /** A drill's verdict: passed with the boot time, or the reason; the screenshot the hub kept. */
  @Column({ type: 'jsonb', nullable: true })
  drill: RestoreDrill | null;

  @Column({ name: 'correlation_id', type: 'text' })
  correlationId: string;

  @Column({ name: 'requested_at', type: 'timestamptz' })
  requestedAt: Date;

  @Column({ name: 'finished_at', type: 'timestamptz', nullable: true })
  finishedAt: Date | null;

  @Column({ name: 'duration_ms', type: 'integer', nullable: true })
  durationMs: number | null;
}
