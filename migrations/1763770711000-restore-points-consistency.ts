import { MigrationInterface, QueryRunner } from 'typeorm';

/**
 * Restore points show how consistent they are (`application` when the guest was frozen, `crash` with the
 * reason) and how long the guest stayed frozen. The read model is replayed from zero (emptied, checkpoint
 * rewound) so that points recorded before the columns existed show what their RestorePointAdded carried.
 */
export class RestorePointsConsistency1763770711000 implements MigrationInterface {
  name = 'RestorePointsConsistency1763770711000';

  async up(q: QueryRunner): Promise<void> {
    await q.query(`ALTER TABLE rm_restore_points ADD COLUMN consistency text NULL`);
    await q.query(`ALTER TABLE rm_restore_points ADD COLUMN consistency_reason text NULL`);
    await q.query(`ALTER TABLE rm_restore_points ADD COLUMN freeze_ms integer NULL`);
    await q.query(`DELETE FROM rm_restore_points`);
    await q.query(`UPDATE projection_checkpoints SET position = NULL, rebuilt_at = now(), updated_at = now() WHERE name = 'restore-points'`);
  }

  async down(q: QueryRunner): Promise<void> {
    await q.query(`ALTER TABLE rm_restore_points DROP COLUMN freeze_ms`);
    await q.query(`ALTER TABLE rm_restore_points DROP COLUMN consistency_reason`);
    await q.query(`ALTER TABLE rm_restore_points DROP COLUMN consistency`);
  }
}
