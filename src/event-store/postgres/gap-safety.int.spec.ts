import { randomUUID } from 'node:crypto';
import { Client } from 'pg';
import { pgClientConfig } from '../../database/db-connection';
import { createTestDatabase, databaseTargets, TestDatabase } from '../../../test/support/test-database';
import { RecordedEvent } from '../event-store.port';

/**
 * The trap: a transaction that took its sequence number first but commits
 * last. A reader ordering by sequence alone would move past it and never see it.
 */
describe.each(databaseTargets())('global order is gap-safe on $label', (target) => {
  let db: TestDatabase;
  let slow: Client;

  beforeAll(async () => {
    db = await createTestDatabase(target);
    slow = new Client(pgClientConfig(db.connection));
    await slow.connect();
  });
  afterAll(async () => {
    await slow.end();
    await db.drop();
  });

  const meta = { correlationId: 'c', causationId: 'c', actor: 'test', schemaVersion: 1 };

  it('never skips an event whose transaction started earlier but committed later', async () => {
    await db.store.append('gap-before', [{ type: 'Before', data: {}, metadata: meta }], 'no_stream');
    const [start] = await db.store.readAll({ filter: { streamPrefixes: ['gap-'] } });

    await slow.query('BEGIN');
    await slow.query(
      `INSERT INTO es_streams (stream_id, revision) VALUES ('gap-slow', 0);
       INSERT INTO es_events (stream_id, revision, event_id, event_type, data, metadata)
       VALUES ('gap-slow', 0, '${randomUUID()}', 'Slow', '{}', '${JSON.stringify(meta)}')`,
    );
    await db.store.append('gap-fast', [{ type: 'Fast', data: {}, metadata: meta }], 'no_stream');

    const abort = new AbortController();
    const live: RecordedEvent[] = [];
    const subscription = (async () => {
      for await (const e of db.store.subscribeToAll({ after: start.position, filter: { streamPrefixes: ['gap-'] }, signal: abort.signal })) {
        live.push(e);
        if (live.length === 2) abort.abort();
      }
    })();

    const whileSlowIsOpen = await db.store.readAll({ after: start.position, filter: { streamPrefixes: ['gap-'] } });
    expect(whileSlowIsOpen.map((e) => e.type)).toEqual([]);
    await new Promise((r) => setTimeout(r, 300));
    expect(live).toEqual([]);

    await slow.query('COMMIT');
    const afterCommit = await db.store.readAll({ after: start.position, filter: { streamPrefixes: ['gap-'] } });
    expect(afterCommit.map((e) => e.type)).toEqual(['Slow', 'Fast']);
    await subscription;
    expect(live.map((e) => e.type)).toEqual(['Slow', 'Fast']);
  });
});
