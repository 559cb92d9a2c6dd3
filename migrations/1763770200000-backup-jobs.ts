import { MigrationInterface, QueryRunner } from 'typeorm';

export class BackupJobs1763770200000 implements MigrationInterface {
  name = 'BackupJobs1763770200000';

  async up(q: QueryRunner): Promise<void> {
    await q.query(`CREATE TABLE rm_backup_jobs (
      job_id uuid PRIMARY KEY,
      vm_id text NOT NULL,
      agent_id uuid NOT NULL,
      repository_id uuid NOT NULL,
      requested_type text NOT NULL,
      type text NULL,
      type_reason text NULL,
      phase text NOT NULL,
      restore_point_id text NULL,
      disks jsonb NOT NULL,
      bytes_written bigint NOT NULL,
      error text NULL,
      failed_phase text NULL,
      cancel_requested boolean NOT NULL,
      requested_at timestamptz NOT NULL,
      started_at timestamptz NULL,
      finished_at timestamptz NULL
    )`);
    await q.query(`CREATE INDEX rm_backup_jobs_vm ON rm_backup_jobs (vm_id, requested_at)`);
    await q.query(`CREATE TABLE rm_backup_outcomes (
      job_id uuid PRIMARY KEY,
      vm_id text NOT NULL,
      outcome text NOT NULL,
      bytes bigint NOT NULL,
      duration_ms bigint NOT NULL,
      finished_at timestamptz NOT NULL
    )`);
    await q.query(`CREATE INDEX rm_backup_outcomes_finished ON rm_backup_outcomes (finished_at)`);
  }

  async down(q: QueryRunner): Promise<void> {
    await q.query(`DROP TABLE rm_backup_outcomes`);
    await q.query(`DROP TABLE rm_backup_jobs`);
  }
}
