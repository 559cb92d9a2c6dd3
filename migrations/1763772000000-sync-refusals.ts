import { MigrationInterface, QueryRunner } from 'typeorm';

/** The points a sync run refused (SyncPointRefused), with their reasons: such a run ends completed-with-warnings. */
export class SyncRefusals1763772000000 implements MigrationInterface {
  name = 'SyncRefusals1763772000000';

  async up(q: QueryRunner): Promise<void> {
    await q.query(`ALTER TABLE rm_sync_runs ADD COLUMN refused jsonb NOT NULL DEFAULT '[]'`);
  }

  async down(q: QueryRunner): Promise<void> {
    await q.query(`ALTER TABLE rm_sync_runs DROP COLUMN refused`);
  }
}
