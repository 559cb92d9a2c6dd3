import { MigrationInterface, QueryRunner } from 'typeorm';

/** A repository may keep its restore points immutable for a number of days. */
export class ImmutableRepositories1763771400000 implements MigrationInterface {
  name = 'ImmutableRepositories1763771400000';

  async up(q: QueryRunner): Promise<void> {
    await q.query(`ALTER TABLE rm_repositories ADD COLUMN immutable_days integer NULL`);
  }

  async down(q: QueryRunner): Promise<void> {
    await q.query(`ALTER TABLE rm_repositories DROP COLUMN immutable_days`);
  }
}
