import { MigrationInterface, QueryRunner } from 'typeorm';

/**
 * An instant recovery whose background copy cannot go on (its storage full, its domain shut off) waits with its
 * domain kept instead of failing: the restore's row says why while it waits. Rows recorded before read as never
 * stalled, which is what their events say.
 */
export class RestoreStalled1763773600000 implements MigrationInterface {
  name = 'RestoreStalled1763773600000';

  async up(q: QueryRunner): Promise<void> {
    await q.query(`ALTER TABLE rm_restores ADD COLUMN stalled text`);
  }

  async down(q: QueryRunner): Promise<void> {
    await q.query(`ALTER TABLE rm_restores DROP COLUMN stalled`);
  }
}
