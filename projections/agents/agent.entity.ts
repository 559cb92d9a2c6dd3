import type { DiskLeftOut } from '../../src/wire/backup-protocol';
import { Column, Entity, PrimaryColumn } from 'typeorm';

@Entity({ name: 'rm_agents' })
export class AgentView {
  @PrimaryColumn({ name: 'agent_id', type: 'uuid' })
  agentId: string;

  @Column({ type: 'text', unique: true })
  name: string;

  @Column({ type: 'text', unique: true })
  fingerprint: string;

  @Column({ name: 'public_key', type: 'text' })
  publicKey: string;

  @Column({ type: 'boolean' })
  connected: boolean;

  @Column({ name: 'remote_address', type: 'text', nullable: true })
  remoteAddress: string | null;

  @Column({ name: 'last_seen_at', type: 'timestamptz', nullable: true })
  lastSeenAt: Date | null;

  @Column({ name: 'registered_at', type: 'timestamptz' })
  registeredAt: Date;
}

@Entity({ name: 'rm_vms' })
export class VmView {
  @PrimaryColumn({ name: 'vm_id', type: 'text' })
  vmId: string;

  @Column({ name: 'agent_id', type: 'uuid' })
  agentId: string;

  @Column({ type: 'text' })
  name: string;

  @Column({ name: 'power_state', type: 'text', nullable: true })
  powerState: string | null;

  @Column({ type: 'jsonb' })
  disks: { diskId: string; path: string; format: string; virtualSize: number; changeTracking: string }[];

  /** Disks holding data the agent cannot read: no backup of the VM holds them. */
  @Column({ name: 'disks_left_out', type: 'jsonb' })
  disksLeftOut: DiskLeftOut[];

  @Column({ name: 'reported_at', type: 'timestamptz' })
  reportedAt: Date;
}

@Entity({ name: 'rm_vm_ownership_conflicts' })
export class VmOwnershipConflictView {
  @PrimaryColumn({ name: 'vm_id', type: 'text' })
  vmId: string;

  @PrimaryColumn({ name: 'claimant_agent_id', type: 'uuid' })
  claimantAgentId: string;

  @Column({ name: 'owner_agent_id', type: 'uuid' })
  ownerAgentId: string;

  @Column({ name: 'refused_at', type: 'timestamptz' })
  refusedAt: Date;
}
