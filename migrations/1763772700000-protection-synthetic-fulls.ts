import { MigrationInterface, QueryRunner } from 'typeorm';

/**
 * A synthetic full is recorded as a full whose agent sent only the changes since the point it copies: simulate learns a
 * full's size and time from the fulls of the history, so it must tell the synthetic ones apart. The jobs already
 * recorded get theirs from the events that decided them.
 */
export class ProtectionSyntheticFulls1763772700000 implements MigrationInterface {
  name = 'ProtectionSyntheticFulls1763772700000';

  async up(q: QueryRunner): Promise<void> {
    await q.query(`ALTER TABLE rm_protection_jobs ADD COLUMN synthesized_from text NULL`);
    await q.query(
      `UPDATE rm_protection_jobs j SET synthesized_from = e.data->>'synthesizedFrom'
         FROM es_events e
        WHERE e.event_type = 'BackupTypeDecided' AND e.stream_id = 'backup-job-' || j.job_id AND e.data->>'synthesizedFrom' IS NOT NULL`,
    );
  }

  async down(q: QueryRunner): Promise<void> {
    await q.query(`ALTER TABLE rm_protection_jobs DROP COLUMN synthesized_from`);
  }
}
