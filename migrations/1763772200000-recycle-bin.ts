import { MigrationInterface, QueryRunner } from 'typeorm';

/** A deleted or pruned restore point waits in the recycle bin (status 'recycled') until its grace ends. */
export class RecycleBin1763772200000 implements MigrationInterface {
  name = 'RecycleBin1763772200000';

  async up(q: QueryRunner): Promise<void> {
    await q.query(`ALTER TABLE rm_restore_points ADD COLUMN recycled_at timestamptz NULL, ADD COLUMN purge_after timestamptz NULL, ADD COLUMN recycled_by text NULL`);
    await q.query(`CREATE INDEX rm_restore_points_recycled ON rm_restore_points (purge_after) WHERE status = 'recycled'`);
  }

  async down(q: QueryRunner): Promise<void> {
    await q.query(`DROP INDEX rm_restore_points_recycled`);
    await q.query(`ALTER TABLE rm_restore_points DROP COLUMN recycled_at, DROP COLUMN purge_after, DROP COLUMN recycled_by`);
  }
}
