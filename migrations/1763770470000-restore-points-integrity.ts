import { MigrationInterface, QueryRunner } from 'typeorm';

/**
 * Restore points show their integrity (verified by content, unverified, corrupt), the damaged
 * ranges they read, and how much of the last verify compared digests. The read model is replayed
 * from zero (emptied, checkpoint rewound) so that corruption and verifications already recorded count.
 */
export class RestorePointsIntegrity1763770470000 implements MigrationInterface {
  name = 'RestorePointsIntegrity1763770470000';

  async up(q: QueryRunner): Promise<void> {
    await q.query(`ALTER TABLE rm_restore_points ADD COLUMN integrity text NOT NULL DEFAULT 'unverified'`);
    await q.query(`ALTER TABLE rm_restore_points ADD COLUMN damaged jsonb NOT NULL DEFAULT '[]'`);
    await q.query(`ALTER TABLE rm_restore_points ADD COLUMN verify_digests text NULL`);
    await q.query(`DELETE FROM rm_restore_points`);
    await q.query(`UPDATE projection_checkpoints SET position = NULL, rebuilt_at = now(), updated_at = now() WHERE name = 'restore-points'`);
  }

  async down(q: QueryRunner): Promise<void> {
    await q.query(`ALTER TABLE rm_restore_points DROP COLUMN verify_digests`);
    await q.query(`ALTER TABLE rm_restore_points DROP COLUMN damaged`);
    await q.query(`ALTER TABLE rm_restore_points DROP COLUMN integrity`);
  }
}
