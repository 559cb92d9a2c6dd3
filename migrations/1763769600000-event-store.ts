import { MigrationInterface, QueryRunner } from 'typeorm';

export class EventStore1763769600000 implements MigrationInterface {
  name = 'EventStore1763769600000';

  async up(q: QueryRunner): Promise<void> {
    await q.query(`CREATE TABLE es_streams (
      stream_id text PRIMARY KEY,
      revision bigint NOT NULL
    )`);
    await q.query(`CREATE TABLE es_events (
      seq bigserial NOT NULL,
      tx_id xid8 NOT NULL DEFAULT pg_current_xact_id(),
      stream_id text NOT NULL,
      revision bigint NOT NULL,
      event_id uuid NOT NULL CONSTRAINT es_events_event_id_key UNIQUE,
      event_type text NOT NULL,
      data jsonb NOT NULL,
      metadata jsonb NOT NULL,
      created_at timestamptz NOT NULL DEFAULT clock_timestamp(),
      PRIMARY KEY (stream_id, revision)
    )`);
    await q.query(`CREATE INDEX es_events_global_order ON es_events (tx_id, seq)`);
    await q.query(`CREATE INDEX es_events_correlation ON es_events ((metadata->>'correlationId'))`);
    await q.query(`CREATE TABLE projection_checkpoints (
      name text PRIMARY KEY,
      position text NULL,
      rebuilt_at timestamptz NULL,
      updated_at timestamptz NOT NULL DEFAULT now()
    )`);
  }

  async down(q: QueryRunner): Promise<void> {
    await q.query(`DROP TABLE projection_checkpoints`);
    await q.query(`DROP TABLE es_events`);
    await q.query(`DROP TABLE es_streams`);
  }
}
