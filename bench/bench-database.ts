import { chmodSync, mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { Pool } from 'pg';
import { DataSource } from 'typeorm';
import { createDataSource, runMigrations } from '../src/database/data-source';
import { connectionFromUrl, DbConnection, pgClientConfig, pgPoolConfig } from '../src/database/db-connection';
import { startEmbeddedPostgres } from '../src/database/embedded-postgres';
import { PostgresEventStore } from '../src/event-store/postgres/postgres-event-store';
import { READ_MODEL_ENTITIES } from '../projections/read-model-entities';

export interface BenchDatabase {
  label: string;
  connection: DbConnection;
  dataSource: DataSource;
  store: PostgresEventStore;
  /** The store's own pool, for a reference run of the same SQL without the store in between. */
  pool: Pool;
  close(): Promise<void>;
}

/** The hub's own default (embedded PostgreSQL in a temp dir), or DATABASE_URL when set. */
export async function openBenchDatabase(): Promise<BenchDatabase> {
  let connection: DbConnection;
  let stopServer = async () => undefined as unknown;
  let dir: string | null = null;
  if (process.env.DATABASE_URL) {
    connection = connectionFromUrl(process.env.DATABASE_URL);
  } else {
    dir = mkdtempSync(join(tmpdir(), 'sendense-bench-'));
    chmodSync(dir, 0o755);
    const embedded = await startEmbeddedPostgres(dir, () => undefined);
    connection = embedded.connection;
    stopServer = embedded.stop;
  }
  const dataSource = createDataSource(connection, READ_MODEL_ENTITIES);
  await dataSource.initialize();
  await runMigrations(dataSource, connection);
  await dataSource.query(`TRUNCATE es_events, es_streams, projection_checkpoints, rm_api_tokens`);
  const pool = new Pool(pgPoolConfig(connection, 20));
  const store = new PostgresEventStore(pool, pgClientConfig(connection));
  return {
    label: process.env.DATABASE_URL ? 'PostgreSQL at DATABASE_URL' : 'embedded PostgreSQL',
    connection,
    dataSource,
    store,
    pool,
    close: async () => {
      await store.close();
      await pool.end();
      await dataSource.destroy();
      await stopServer();
      if (dir) rmSync(dir, { recursive: true, force: true });
    },
  };
}
