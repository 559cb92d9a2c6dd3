import { MigrationInterface, QueryRunner } from 'typeorm';

/** Hub-to-hub sync: the remotes a hub pulls from, its sync jobs and their runs, and where a synced point came from. */
export class Sync1763771500000 implements MigrationInterface {
  name = 'Sync1763771500000';

  async up(q: QueryRunner): Promise<void> {
    await q.query(`CREATE TABLE rm_remotes (
      remote_id uuid PRIMARY KEY, name text NOT NULL UNIQUE, url text NOT NULL, host text NOT NULL, port integer NOT NULL,
      fingerprint text NOT NULL, hub_instance text NOT NULL, registered_at timestamptz NOT NULL)`);
    await q.query(`CREATE TABLE rm_sync_jobs (
      sync_job_id uuid PRIMARY KEY, remote_id uuid NOT NULL, repository_id uuid NOT NULL, remote_repository_id uuid NULL,
      vms jsonb NULL, schedule text NULL, time_zone text NULL, max_bytes_per_second bigint NULL, retention jsonb NULL, created_at timestamptz NOT NULL)`);
    await q.query(`CREATE TABLE rm_sync_runs (
      run_id uuid PRIMARY KEY, sync_job_id uuid NOT NULL, status text NOT NULL, trigger text NOT NULL, started_at timestamptz NOT NULL,
      finished_at timestamptz NULL, synced jsonb NOT NULL, already_held integer NULL, bytes_received bigint NULL, reason text NULL, restore_point_id text NULL,
      pruned jsonb NOT NULL DEFAULT '[]', deferred jsonb NOT NULL DEFAULT '[]', progress jsonb NULL)`);
    await q.query(`CREATE INDEX rm_sync_runs_job ON rm_sync_runs (sync_job_id, started_at DESC)`);
    await q.query(`ALTER TABLE rm_restore_points ADD COLUMN source jsonb NULL`);
  }

  async down(q: QueryRunner): Promise<void> {
    await q.query(`ALTER TABLE rm_restore_points DROP COLUMN source`);
    await q.query(`DROP TABLE rm_sync_runs`);
    await q.query(`DROP TABLE rm_sync_jobs`);
    await q.query(`DROP TABLE rm_remotes`);
  }
}
