import { MigrationInterface, QueryRunner } from 'typeorm';

/**
 * How a repository stores its points (those registered before chunk stores existed are qcow2 chains), and what a
 * chunks repository's store holds and last freed.
 */
export class RepositoryLayout1763772800000 implements MigrationInterface {
  name = 'RepositoryLayout1763772800000';

  async up(q: QueryRunner): Promise<void> {
    await q.query(`ALTER TABLE rm_repositories ADD COLUMN layout text NOT NULL DEFAULT 'qcow2'`);
    await q.query(`ALTER TABLE rm_repositories ADD COLUMN chunk_space jsonb NULL, ADD COLUMN last_collection jsonb NULL`);
  }

  async down(q: QueryRunner): Promise<void> {
    await q.query(`ALTER TABLE rm_repositories DROP COLUMN layout, DROP COLUMN chunk_space, DROP COLUMN last_collection`);
  }
}
