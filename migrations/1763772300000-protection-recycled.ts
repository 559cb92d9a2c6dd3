import { MigrationInterface, QueryRunner } from 'typeorm';

/** The protection report counts a VM's points in the recycle bin and takes its RPO from the others. */
export class ProtectionRecycled1763772300000 implements MigrationInterface {
  name = 'ProtectionRecycled1763772300000';

  async up(q: QueryRunner): Promise<void> {
    await q.query(`ALTER TABLE rm_protection_points ADD COLUMN recycled boolean NOT NULL DEFAULT false`);
  }

  async down(q: QueryRunner): Promise<void> {
    await q.query(`ALTER TABLE rm_protection_points DROP COLUMN recycled`);
  }
}
