import { MigrationInterface, QueryRunner } from 'typeorm';

/** A VM's power state as its source reports it (VMware), null where the source does not. */
export class VmPowerState1763771700000 implements MigrationInterface {
  name = 'VmPowerState1763771700000';

  async up(q: QueryRunner): Promise<void> {
    await q.query(`ALTER TABLE rm_vms ADD COLUMN power_state text NULL`);
  }

  async down(q: QueryRunner): Promise<void> {
    await q.query(`ALTER TABLE rm_vms DROP COLUMN power_state`);
  }
}
