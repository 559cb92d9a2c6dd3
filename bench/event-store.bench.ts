import { randomUUID } from 'node:crypto';
import { ApiTokensProjector } from '../projections/api-tokens/api-tokens.projector';
import { API_TOKEN_ISSUED } from '../src/auth/tokens/api-token.events';
import { pgClientConfig } from '../src/database/db-connection';
import { EventMetadata, NewEvent } from '../src/event-store/event-store.port';
import { ProjectionRunner, readCheckpoint } from '../src/projection-runner/projection-runner';
import { openBenchDatabase } from './bench-database';

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
    const perStream = 30;
    report(`append, ${streams} streams concurrently, 1 event each`, streams * perStream, await timed(async () => {
      await Promise.all(
        Array.from({ length: streams }, async (_, s) => {
          for (let i = 0; i < perStream; i++) await db.store.append(`bench-par-${s}`, [event(i)], i === 0 ? 'no_stream' : BigInt(i - 1));
        }),
      );
    }));

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
  } finally {
    await db.close();
  }
}
