import { MigrationInterface, QueryRunner } from 'typeorm';

/** The audit's search by actor and by time (GET /api/v1/audit/events) without reading the whole store. */
export class EventSearchIndexes1763771200000 implements MigrationInterface {
  name = 'EventSearchIndexes1763771200000';

  async up(q: QueryRunner): Promise<void> {
    await q.query(`CREATE INDEX es_events_actor ON es_events ((metadata->>'actor'))`);
    await q.query(`CREATE INDEX es_events_created_at ON es_events (created_at)`);
  }

  async down(q: QueryRunner): Promise<void> {
    await q.query(`DROP INDEX es_events_created_at`);
    await q.query(`DROP INDEX es_events_actor`);
  }
}
