import { MigrationInterface, QueryRunner } from 'typeorm';

/** The protection report shows, per VM, its newest recovery drill and the newest that passed with its time to a running guest. */
export class ProtectionDrills1763770910000 implements MigrationInterface {
  name = 'ProtectionDrills1763770910000';

  async up(q: QueryRunner): Promise<void> {
    await q.query(`CREATE TABLE rm_protection_drills (
      vm_id text PRIMARY KEY,
      last_at timestamptz NOT NULL,
      last_passed boolean NOT NULL,
      last_reason text NULL,
      last_restore_point_id text NOT NULL,
      passed_at timestamptz NULL,
      passed_boot_ms integer NULL,
      passed_restore_point_id text NULL)`);
  }

  async down(q: QueryRunner): Promise<void> {
    await q.query(`DROP TABLE rm_protection_drills`);
  }
}
