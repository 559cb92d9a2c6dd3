import { MigrationInterface, QueryRunner } from 'typeorm';

/**
 * Each VM's failures since its last completed backup, kept as the outcomes arrive: the protection report read
 * every finished job of every VM to count them, a read that grew with the hub's history (500 VMs backed up hourly
 * are 12,000 jobs a day), and now reads one row per VM. Filled from the jobs already recorded.
 */
export class ProtectionStreaks1763771800000 implements MigrationInterface {
  name = 'ProtectionStreaks1763771800000';

  async up(q: QueryRunner): Promise<void> {
    await q.query(`CREATE TABLE rm_protection_streaks (vm_id text PRIMARY KEY, failures_in_row integer NOT NULL)`);
    await q.query(`INSERT INTO rm_protection_streaks (vm_id, failures_in_row)
      SELECT vm_id, (count(*) FILTER (WHERE outcome = 'failed' AND completed_since = 0))::int FROM (
        SELECT vm_id, outcome, count(*) FILTER (WHERE outcome = 'completed') OVER (PARTITION BY vm_id ORDER BY finished_at DESC, job_id DESC) AS completed_since
        FROM rm_protection_jobs WHERE outcome IN ('completed', 'failed') AND vm_id IS NOT NULL) j
      GROUP BY vm_id`);
  }

  async down(q: QueryRunner): Promise<void> {
    await q.query(`DROP TABLE rm_protection_streaks`);
  }
}
