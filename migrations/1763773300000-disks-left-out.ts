import { MigrationInterface, QueryRunner } from 'typeorm';

/**
 * A VM's disks that hold data its agent cannot read (a network or block device, an unsupported format) were left
 * out of its backups with nothing but a line in the agent's log: the VM, its jobs and their points now name them.
 * Rows recorded before read as none, which is what their events say.
 */
const TABLES = ['rm_vms', 'rm_backup_jobs', 'rm_restore_points'];

export class DisksLeftOut1763773300000 implements MigrationInterface {
  name = 'DisksLeftOut1763773300000';

  async up(q: QueryRunner): Promise<void> {
    for (const table of TABLES) await q.query(`ALTER TABLE ${table} ADD COLUMN disks_left_out jsonb NOT NULL DEFAULT '[]'`);
  }

  async down(q: QueryRunner): Promise<void> {
    for (const table of TABLES) await q.query(`ALTER TABLE ${table} DROP COLUMN disks_left_out`);
  }
}
