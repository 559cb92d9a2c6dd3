import { MigrationInterface, QueryRunner } from 'typeorm';

/**
 * The protection report takes a VM's newest point that is intact: a corrupt one (a verify found damage in it or in
 * a point it reads through, a delete stopped midway) protects nothing. Points already known corrupt are read from
 * the restore points' read model, which has recorded their integrity all along.
 */
export class ProtectionCorrupt1763773200000 implements MigrationInterface {
  name = 'ProtectionCorrupt1763773200000';

  async up(q: QueryRunner): Promise<void> {
    await q.query(`ALTER TABLE rm_protection_points ADD COLUMN corrupt boolean NOT NULL DEFAULT false`);
    await q.query(`UPDATE rm_protection_points p SET corrupt = true FROM rm_restore_points r WHERE r.restore_point_id = p.restore_point_id AND r.integrity = 'corrupt'`);
  }

  async down(q: QueryRunner): Promise<void> {
    await q.query(`ALTER TABLE rm_protection_points DROP COLUMN corrupt`);
  }
}
