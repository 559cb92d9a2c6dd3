import { MigrationInterface, QueryRunner } from 'typeorm';

/** A repository limits how many restore points one chain holds; null on those registered before: the default applies. */
export class ChainDepth1763772600000 implements MigrationInterface {
  name = 'ChainDepth1763772600000';

  async up(q: QueryRunner): Promise<void> {
    await q.query(`ALTER TABLE rm_repositories ADD COLUMN max_chain_depth integer NULL`);
  }

  async down(q: QueryRunner): Promise<void> {
    await q.query(`ALTER TABLE rm_repositories DROP COLUMN max_chain_depth`);
  }
}
