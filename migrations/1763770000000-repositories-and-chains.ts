import { MigrationInterface, QueryRunner } from 'typeorm';

export class RepositoriesAndChains1763770000000 implements MigrationInterface {
  name = 'RepositoriesAndChains1763770000000';

  async up(q: QueryRunner): Promise<void> {
    await q.query(`CREATE TABLE rm_repositories (
      repository_id uuid PRIMARY KEY,
      name text NOT NULL,
      kind text NOT NULL,
      root text NOT NULL,
      source jsonb NULL,
      status text NOT NULL,
      total_bytes bigint NULL,
      free_bytes bigint NULL,
      low_space boolean NOT NULL,
      sampled_at timestamptz NULL,
      registered_at timestamptz NOT NULL
    )`);
    await q.query(`CREATE TABLE rm_restore_points (
      restore_point_id text PRIMARY KEY,
      vm_id text NOT NULL,
      repository_id uuid NOT NULL,
      backup_id text NULL,
      type text NOT NULL,
      parent_id text NULL,
      created_at timestamptz NOT NULL,
      disks jsonb NOT NULL,
      status text NOT NULL,
      chain_position text NOT NULL,
      verified_at timestamptz NULL,
      verify_ok boolean NULL,
      verify_problems jsonb NULL,
      verify_warnings jsonb NULL
    )`);
    await q.query(`CREATE INDEX rm_restore_points_chain ON rm_restore_points (vm_id, repository_id)`);
  }

  async down(q: QueryRunner): Promise<void> {
    await q.query(`DROP TABLE rm_restore_points`);
    await q.query(`DROP TABLE rm_repositories`);
  }
}
