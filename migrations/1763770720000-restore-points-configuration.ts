import { MigrationInterface, QueryRunner } from 'typeorm';

/**
 * Restore points say whether they hold the VM's configuration (domain XML, UEFI variables, TPM state). The
 * read model is replayed from zero so points recorded before the column existed show what their events carried.
 */
export class RestorePointsConfiguration1763770720000 implements MigrationInterface {
  name = 'RestorePointsConfiguration1763770720000';

  async up(q: QueryRunner): Promise<void> {
    await q.query(`ALTER TABLE rm_restore_points ADD COLUMN configuration jsonb NULL`);
    await q.query(`DELETE FROM rm_restore_points`);
    await q.query(`UPDATE projection_checkpoints SET position = NULL, rebuilt_at = now(), updated_at = now() WHERE name = 'restore-points'`);
  }

  async down(q: QueryRunner): Promise<void> {
    await q.query(`ALTER TABLE rm_restore_points DROP COLUMN configuration`);
  }
}
