import { MigrationInterface, QueryRunner } from 'typeorm';

/**
 * The restore-mounts read model follows the chains' verify results. It is replayed from zero
 * (emptied, checkpoint rewound) so that verifications recorded before this table existed count too.
 */
export class RestoreMountIntegrity1763770460000 implements MigrationInterface {
  name = 'RestoreMountIntegrity1763770460000';

  async up(q: QueryRunner): Promise<void> {
    await q.query(`CREATE TABLE rm_restore_point_integrity (
      restore_point_id text PRIMARY KEY,
      status text NOT NULL,
      verified_at text NULL,
      damaged jsonb NOT NULL,
      problems jsonb NOT NULL
    )`);
    await q.query(`DELETE FROM rm_restore_mounts`);
    await q.query(`UPDATE projection_checkpoints SET position = NULL, rebuilt_at = now(), updated_at = now() WHERE name = 'restore-mounts'`);
  }

  async down(q: QueryRunner): Promise<void> {
    await q.query(`DROP TABLE rm_restore_point_integrity`);
  }
}
