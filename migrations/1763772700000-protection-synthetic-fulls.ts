import { MigrationInterface, QueryRunner } from 'typeorm';

/**
 * A synthetic full is recorded as a full whose agent sent only the changes since the point it copies: simulate learns a
 * full's size and time from the fulls of the history, so it must tell the synthetic ones apart. The protection report
 * is replayed from zero (emptied, checkpoint rewound) so that the jobs already recorded get theirs from the events that
 * decided them, whichever event store holds those.
 */
export class ProtectionSyntheticFulls1763772700000 implements MigrationInterface {
  name = 'ProtectionSyntheticFulls1763772700000';

  async up(q: QueryRunner): Promise<void> {
    await q.query(`ALTER TABLE rm_protection_jobs ADD COLUMN synthesized_from text NULL`);
    for (const table of ['rm_protection_points', 'rm_protection_jobs', 'rm_protection_vms', 'rm_protection_policies', 'rm_protection_drills', 'rm_protection_streaks']) await q.query(`DELETE FROM ${table}`);
    await q.query(`UPDATE projection_checkpoints SET position = NULL, rebuilt_at = now(), updated_at = now() WHERE name = 'protection-report'`);
  }

  async down(q: QueryRunner): Promise<void> {
    await q.query(`ALTER TABLE rm_protection_jobs DROP COLUMN synthesized_from`);
  }
}
