import { MigrationInterface, QueryRunner } from 'typeorm';

/**
 * Group commit: several appenders' appends in one transaction, so one WAL flush commits them all.
 * Each append is checked on its own (event ids first, then the expected revision) and answers
 * with its own status instead of raising, so one append's conflict leaves the others of its
 * group in. The caller orders the group by stream, so two groups lock stream rows in the same
 * order and never deadlock. A race this cannot see (another group inserting the same event id,
 * not yet committed) fails the group as a whole, and the caller then appends its members one by
 * one through es_append().
 */
export class EventStoreGroupCommit1763770650000 implements MigrationInterface {
  name = 'EventStoreGroupCommit1763770650000';

  async up(q: QueryRunner): Promise<void> {
    await q.query(`CREATE FUNCTION es_append_group(p_streams text[], p_expected text[], p_counts int[], p_ids uuid[], p_types text[], p_data jsonb[], p_meta jsonb[])
      RETURNS TABLE (ord int, status text, tx text, seq text, revision text)
      LANGUAGE plpgsql AS $$
      DECLARE
        v_from int := 1;
        v_to int;
        n int;
        v_last bigint;
        v_seq bigint;
        v_ids uuid[];
        v_id uuid;
        v_known boolean;
        v_tx text := pg_current_xact_id()::text;
      BEGIN
        FOR i IN 1 .. cardinality(p_streams) LOOP
          n := p_counts[i];
          v_to := v_from + n - 1;
          v_ids := p_ids[v_from:v_to];
          ord := i;
          v_known := false;
          -- One equality probe per id: the unique index answers it whatever the table's statistics say
          -- (= ANY() on a table last analysed when empty is planned as a scan of the whole table).
          FOREACH v_id IN ARRAY v_ids LOOP
            v_known := v_known OR EXISTS (SELECT 1 FROM es_events e WHERE e.event_id = v_id);
          END LOOP;
          IF v_known THEN
            status := 'duplicate'; tx := NULL; seq := NULL; revision := NULL;
            RETURN NEXT;
            v_from := v_to + 1;
            CONTINUE;
          END IF;
          v_last := NULL;
          IF p_expected[i] = 'no_stream' THEN
            INSERT INTO es_streams AS s (stream_id, revision) VALUES (p_streams[i], n - 1) ON CONFLICT (stream_id) DO NOTHING RETURNING s.revision INTO v_last;
          ELSIF p_expected[i] = 'any' THEN
            INSERT INTO es_streams AS s (stream_id, revision) VALUES (p_streams[i], n - 1)
              ON CONFLICT (stream_id) DO UPDATE SET revision = s.revision + n RETURNING s.revision INTO v_last;
          ELSIF p_expected[i] = 'stream_exists' THEN
            UPDATE es_streams s SET revision = s.revision + n WHERE s.stream_id = p_streams[i] RETURNING s.revision INTO v_last;
          ELSE
            UPDATE es_streams s SET revision = s.revision + n WHERE s.stream_id = p_streams[i] AND s.revision = p_expected[i]::bigint RETURNING s.revision INTO v_last;
          END IF;
          IF v_last IS NULL THEN
            status := 'conflict'; tx := NULL; seq := NULL;
            SELECT s.revision::text INTO revision FROM es_streams s WHERE s.stream_id = p_streams[i];
            RETURN NEXT;
            v_from := v_to + 1;
            CONTINUE;
          END IF;
          WITH inserted AS (
            INSERT INTO es_events (stream_id, revision, event_id, event_type, data, metadata)
            SELECT p_streams[i], v_last - n + e.k, e.id, e.type, e.data, e.meta
            FROM unnest(v_ids, p_types[v_from:v_to], p_data[v_from:v_to], p_meta[v_from:v_to]) WITH ORDINALITY AS e(id, type, data, meta, k)
            RETURNING es_events.seq
          )
          SELECT max(inserted.seq) INTO v_seq FROM inserted;
          status := 'ok'; tx := v_tx; seq := v_seq::text; revision := v_last::text;
          RETURN NEXT;
          v_from := v_to + 1;
        END LOOP;
      END
      $$`);
  }

  async down(q: QueryRunner): Promise<void> {
    await q.query(`DROP FUNCTION es_append_group(text[], text[], int[], uuid[], text[], jsonb[], jsonb[])`);
  }
}
