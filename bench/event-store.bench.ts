import { randomUUID } from 'node:crypto';
import { ApiTokensProjector } from '../projections/api-tokens/api-tokens.projector';
import { API_TOKEN_ISSUED } from '../src/auth/tokens/api-token.events';
import { pgClientConfig } from '../src/database/db-connection';
import { EventMetadata, NewEvent } from '../src/event-store/event-store.port';
import { encodePosition } from '../src/event-store/positions';
import { ProjectionRunner, readCheckpoint, resetProjection } from '../src/projection-runner/projection-runner';
import { BenchDatabase, openBenchDatabase } from './bench-database';

const meta: EventMetadata = { correlationId: 'bench', causationId: 'bench', actor: 'bench', schemaVersion: 1 };
const event = (n: number): NewEvent => ({ type: 'BenchEvent', data: { n, payload: 'x'.repeat(200) }, metadata: meta });

function report(label: string, events: number, ms: number): void {
  process.stdout.write(`${label.padEnd(48)} ${String(events).padStart(7)} events ${(ms / 1000).toFixed(2).padStart(7)} s ${Math.round((events * 1000) / ms).toString().padStart(8)} events/s\n`);
}

async function timed(fn: () => Promise<void>): Promise<number> {
  const start = process.hrtime.bigint();
  await fn();
  return Number(process.hrtime.bigint() - start) / 1e6;
}

export async function runEventStoreBench(): Promise<void> {
  const db = await openBenchDatabase();
  process.stdout.write(`database: ${db.label}\n`);
  try {
    const sequential = 2000;
    report('append, one stream, sequential, 1 event each', sequential, await timed(async () => {
      for (let i = 0; i < sequential; i++) await db.store.append('bench-seq', [event(i)], i === 0 ? 'no_stream' : BigInt(i - 1));
    }));

    const streams = 100;
    const perStream = 100;
    const concurrent = (label: string, append: (stream: string, e: NewEvent, expected: 'no_stream' | bigint) => Promise<unknown>) =>
      timed(() =>
        Promise.all(
          Array.from({ length: streams }, async (_, s) => {
            for (let i = 0; i < perStream; i++) await append(`${label}-${s}`, event(i), i === 0 ? 'no_stream' : BigInt(i - 1));
          }),
        ).then(() => undefined),
      );
    // The reference: the same appends, each its own transaction through es_append() (the path before group commit).
    const alone = await concurrent('bench-alone', (stream, e, expected) =>
      db.pool.query(`SELECT * FROM es_append($1, $2, $3::uuid[], $4::text[], $5::jsonb[], $6::jsonb[])`, [stream, String(expected), [randomUUID()], [e.type], [JSON.stringify(e.data)], [JSON.stringify(e.metadata)]]),
    );
    const grouped = await concurrent('bench-par', (stream, e, expected) => db.store.append(stream, [e], expected));
    report(`append, ${streams} streams concurrently, 1 event each`, streams * perStream, grouped);
    report(`  reference: one transaction per append`, streams * perStream, alone);
    process.stdout.write(`  group commit / one transaction per append: ${(alone / grouped).toFixed(2)}x\n`);

    const batches = 200;
    const batchSize = 100;
    report(`append, batches of ${batchSize} events`, batches * batchSize, await timed(async () => {
      for (let b = 0; b < batches; b++) {
        await db.store.append('bench-batch', Array.from({ length: batchSize }, (_, i) => event(i)), b === 0 ? 'no_stream' : BigInt(b * batchSize - 1));
      }
    }));

    const tokens = 20_000;
    for (let b = 0; b < tokens / 500; b++) {
      await Promise.all(
        Array.from({ length: 500 }, (_, i) => {
          const tokenId = randomUUID();
          return db.store.append(`api-token-${tokenId}`, [{ type: API_TOKEN_ISSUED, data: { tokenId, name: `t${b}-${i}`, tokenHash: randomUUID() }, metadata: meta }], 'no_stream');
        }),
      );
    }
    const projector = new ApiTokensProjector();
    const head = (await db.store.readAll({ filter: projector.filter, maxCount: 1_000_000 })).pop()!.position;
    const runner = new ProjectionRunner(projector, db.store, db.dataSource, pgClientConfig(db.connection), { idleWaitMs: 20 });
    report('projection catch-up (api-tokens, from zero)', tokens, await timed(async () => {
      runner.start();
      while ((await readCheckpoint(db.dataSource, projector.name)) !== head) await new Promise((r) => setTimeout(r, 5));
    }));
    await runner.stop();

    await rebuildFromMillion(db, projector);
  } finally {
    await db.close();
  }
}

const REBUILD_EVENTS = 1_000_000;

/**
 * A read model rebuilt from a million events: ApiTokenIssued events (one row each, the projector
 * with the most rows per event) written straight into es_events in transactions of 100,000
 * (appending them one by one would take longer than the rebuild), then the projection reset and
 * replayed from zero by the runner.
 */
async function rebuildFromMillion(db: BenchDatabase, projector: ApiTokensProjector): Promise<void> {
  const chunk = 100_000;
  const seedMs = await timed(async () => {
    for (let from = 0; from < REBUILD_EVENTS; from += chunk) {
      await db.pool.query(
        `WITH t AS (SELECT gen_random_uuid() AS id, g FROM generate_series($1::int, $2::int) g),
              s AS (INSERT INTO es_streams (stream_id, revision) SELECT 'api-token-' || id, 0 FROM t)
         INSERT INTO es_events (stream_id, revision, event_id, event_type, data, metadata)
         SELECT 'api-token-' || id, 0, id, $3, jsonb_build_object('tokenId', id, 'name', 'rebuild-' || g, 'tokenHash', md5(id::text)), $4::jsonb FROM t`,
        [from + 1, from + chunk, API_TOKEN_ISSUED, JSON.stringify(meta)],
      );
    }
  });
  process.stdout.write(`seeded ${REBUILD_EVENTS} events in ${(seedMs / 1000).toFixed(1)} s (SQL, not timed below)\n`);
  await db.pool.query('VACUUM ANALYZE es_events');
  const [last] = (await db.pool.query<{ tx: string; seq: string }>(`SELECT tx_id::text AS tx, seq::text AS seq FROM es_events ORDER BY es_events.tx_id DESC, es_events.seq DESC LIMIT 1`)).rows;
  const head = encodePosition(last.tx, last.seq);
  const total = Number((await db.pool.query<{ n: string }>(`SELECT count(*)::text AS n FROM es_events WHERE stream_id LIKE 'api-token-%'`)).rows[0].n);
  await resetProjection(db.dataSource, projector);
  const runner = new ProjectionRunner(projector, db.store, db.dataSource, pgClientConfig(db.connection), { idleWaitMs: 20 });
  const ms = await timed(async () => {
    runner.start();
    while ((await readCheckpoint(db.dataSource, projector.name)) !== head) await new Promise((r) => setTimeout(r, 50));
  });
  await runner.stop();
  const rows = Number((await db.pool.query<{ n: string }>(`SELECT count(*)::text AS n FROM rm_api_tokens`)).rows[0].n);
  if (rows !== total) throw new Error(`rebuild left ${rows} rows for ${total} events`);
  report(`projection rebuild (api-tokens, from zero)`, total, ms);
}
