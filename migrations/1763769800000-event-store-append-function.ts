import { MigrationInterface, QueryRunner } from 'typeorm';

/**
 * Appending in one server-side call: one round trip and one short transaction
 * per append. The wake-up NOTIFY is sent after commit, outside this
 * transaction, because NOTIFY holds a global lock across commit and would
 * serialise all concurrent appends.
 */
export class EventStoreAppendFunction1763769800000 implements MigrationInterface {
  name = 'EventStoreAppendFunction1763769800000';

  async up(q: QueryRunner): Promise<void> {
    await q.query(`CREATE FUNCTION es_append(p_stream text, p_expected text, p_ids uuid[], p_types text[], p_data jsonb[], p_meta jsonb[])
      RETURNS TABLE (tx text, seq text, last_revision text)
      LANGUAGE plpgsql AS $$
      DECLARE
        n bigint := cardinality(p_ids);
        v_last bigint;
        v_actual bigint;
      BEGIN
        IF p_expected = 'no_stream' THEN
          INSERT INTO es_streams (stream_id, revision) VALUES (p_stream, n - 1) ON CONFLICT (stream_id) DO NOTHING RETURNING revision INTO v_last;
        ELSIF p_expected = 'any' THEN
          INSERT INTO es_streams (stream_id, revision) VALUES (p_stream, n - 1)
            ON CONFLICT (stream_id) DO UPDATE SET revision = es_streams.revision + n RETURNING revision INTO v_last;
        ELSIF p_expected = 'stream_exists' THEN
          UPDATE es_streams SET revision = revision + n WHERE stream_id = p_stream RETURNING revision INTO v_last;
        ELSE
          UPDATE es_streams SET revision = revision + n WHERE stream_id = p_stream AND revision = p_expected::bigint RETURNING revision INTO v_last;
        END IF;
        IF v_last IS NULL THEN
          SELECT revision INTO v_actual FROM es_streams WHERE stream_id = p_stream;
          RAISE EXCEPTION 'wrong expected revision' USING ERRCODE = 'SE409', DETAIL = coalesce(v_actual::text, 'no_stream');
        END IF;
        RETURN QUERY
          INSERT INTO es_events (stream_id, revision, event_id, event_type, data, metadata)
          SELECT p_stream, v_last - n + e.ord, e.id, e.type, e.data, e.meta
          FROM unnest(p_ids, p_types, p_data, p_meta) WITH ORDINALITY AS e(id, type, data, meta, ord)
          RETURNING tx_id::text, es_events.seq::text, v_last::text;
      END
      $$`);
  }

  async down(q: QueryRunner): Promise<void> {
    await q.query(`DROP FUNCTION es_append(text, text, uuid[], text[], jsonb[], jsonb[])`);
  }
}
