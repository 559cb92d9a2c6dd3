import { MigrationInterface, QueryRunner } from 'typeorm';

/**
 * Each repository's points' bytes and their history by the hour. Left empty: the projection has no checkpoint yet,
 * so its first run replays every chain event and writes the history as the events' own times tell it.
 */
export class RepositoryUsage1763772900000 implements MigrationInterface {
  name = 'RepositoryUsage1763772900000';

  async up(q: QueryRunner): Promise<void> {
    await q.query(`CREATE TABLE rm_repository_point_bytes (restore_point_id text PRIMARY KEY, repository_id uuid NOT NULL, vm_id text NOT NULL, parent_id text NULL, bytes bigint NOT NULL)`);
    await q.query(`CREATE INDEX rm_repository_point_bytes_repository ON rm_repository_point_bytes (repository_id)`);
    await q.query(`CREATE TABLE rm_repository_usage (repository_id uuid NOT NULL, hour timestamptz NOT NULL, at timestamptz NOT NULL, used_bytes bigint NOT NULL, PRIMARY KEY (repository_id, hour))`);
  }

  async down(q: QueryRunner): Promise<void> {
    await q.query(`DROP TABLE rm_repository_usage`);
    await q.query(`DROP TABLE rm_repository_point_bytes`);
  }
}
