import { MigrationInterface, QueryRunner } from 'typeorm';

/**
 * The protection read model (projections/protection-report): policies, VMs, every backup job with
 * the policy and slot that started it, and the restore points of each chain. Reports, the retention
 * workflow and simulate read it; `?at=` replays the same projector into temporary copies of these tables.
 */
export class ProtectionReport1763770610000 implements MigrationInterface {
  name = 'ProtectionReport1763770610000';

  async up(q: QueryRunner): Promise<void> {
    await q.query(`CREATE TABLE rm_protection_policies (
      policy_id text PRIMARY KEY,
      name text NOT NULL,
      definition jsonb NOT NULL,
      created_at timestamptz NOT NULL,
      deleted_at timestamptz NULL)`);
    await q.query(`CREATE TABLE rm_protection_vms (
      vm_id text PRIMARY KEY,
      name text NOT NULL,
      agent_id text NOT NULL)`);
    await q.query(`CREATE TABLE rm_protection_jobs (
      job_id text PRIMARY KEY,
      vm_id text NULL,
      repository_id text NULL,
      policy_id text NULL,
      slot timestamptz NULL,
      outcome text NOT NULL DEFAULT 'running',
      reason text NULL,
      type text NULL,
      requested_at timestamptz NULL,
      started_at timestamptz NULL,
      finished_at timestamptz NULL,
      restore_point_id text NULL,
      bytes_written bigint NOT NULL DEFAULT 0,
      retention_decided boolean NOT NULL DEFAULT false)`);
    await q.query(`CREATE INDEX rm_protection_jobs_vm ON rm_protection_jobs (vm_id, finished_at)`);
    await q.query(`CREATE INDEX rm_protection_jobs_awaiting ON rm_protection_jobs (finished_at) WHERE outcome = 'completed' AND NOT retention_decided`);
    await q.query(`CREATE TABLE rm_protection_points (
      restore_point_id text PRIMARY KEY,
      vm_id text NOT NULL,
      repository_id text NOT NULL,
      backup_id text NULL,
      parent_id text NULL,
      type text NOT NULL,
      created_at timestamptz NOT NULL,
      bytes bigint NOT NULL)`);
    await q.query(`CREATE INDEX rm_protection_points_chain ON rm_protection_points (vm_id, repository_id, created_at)`);
  }

  async down(q: QueryRunner): Promise<void> {
    await q.query(`DROP TABLE rm_protection_points`);
    await q.query(`DROP TABLE rm_protection_jobs`);
    await q.query(`DROP TABLE rm_protection_vms`);
    await q.query(`DROP TABLE rm_protection_policies`);
  }
}
