import { Column, Entity, PrimaryColumn } from 'typeorm';
import { PolicyDrill, PolicySchedule, PolicyVmSelector, RetentionRules } from '../../src/policies/policy.events';

@Entity({ name: 'rm_policies' })
export class PolicyView {
  @PrimaryColumn({ name: 'policy_id', type: 'uuid' })
  policyId: string;

  @Column({ type: 'text' })
  name: string;

  @Column({ type: 'jsonb' })
  vms: PolicyVmSelector;

  @Column({ name: 'repository_id', type: 'uuid' })
  repositoryId: string;

  @Column({ type: 'jsonb' })
  schedule: PolicySchedule;

  @Column({ name: 'full_every', type: 'int', nullable: true })
  fullEvery: number | null;

  @Column({ type: 'jsonb' })
  retention: RetentionRules;

  @Column({ name: 'rpo_hours', type: 'double precision' })
  rpoHours: number;

  @Column({ type: 'boolean' })
  enabled: boolean;

  @Column({ type: 'jsonb', nullable: true })
  drill: PolicyDrill | null;

  @Column({ name: 'created_at', type: 'timestamptz' })
  createdAt: Date;

  @Column({ name: 'updated_at', type: 'timestamptz' })
  updatedAt: Date;

  /** The newest calendar slot the scheduler handled (fired, skipped or missed). */
  @Column({ name: 'last_slot', type: 'timestamptz', nullable: true })
  lastSlot: Date | null;
}
