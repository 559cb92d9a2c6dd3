import { MigrationInterface, QueryRunner } from 'typeorm';

/** How a repository stores its points; those registered before chunk stores existed are qcow2 chains. */
export class RepositoryLayout1763772800000 implements MigrationInterface {
  name = 'RepositoryLayout1763772800000';

  async up(q: QueryRunner): Promise<void> {
    await q.query(`ALTER TABLE rm_repositories ADD COLUMN layout text NOT NULL DEFAULT 'qcow2'`);
  }

  async down(q: QueryRunner): Promise<void> {
    await q.query(`ALTER TABLE rm_repositories DROP COLUMN layout`);
  }
}
