import { MigrationInterface, QueryRunner } from 'typeorm';

/** The protection report names the disks no point of a VM holds, from the agent's inventory (as rm_vms does since DisksLeftOut). */
export class ProtectionDisksLeftOut1763773400000 implements MigrationInterface {
  name = 'ProtectionDisksLeftOut1763773400000';

  async up(q: QueryRunner): Promise<void> {
    // IF NOT EXISTS: a database migrated at b5a2a25, whose DisksLeftOut added this column too, has it already
    await q.query(`ALTER TABLE rm_protection_vms ADD COLUMN IF NOT EXISTS disks_left_out jsonb NOT NULL DEFAULT '[]'`);
    await q.query(`UPDATE rm_protection_vms p SET disks_left_out = v.disks_left_out FROM rm_vms v WHERE v.vm_id = p.vm_id`);
  }

  async down(q: QueryRunner): Promise<void> {
    await q.query(`ALTER TABLE rm_protection_vms DROP COLUMN disks_left_out`);
  }
}
