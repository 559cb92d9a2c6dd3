import { randomBytes } from 'node:crypto';
import { Client, Pool } from 'pg';
import { DataSource } from 'typeorm';
import { createDataSource, runMigrations } from '../../src/database/data-source';
import { DbConnection, connectionFromUrl, pgClientConfig, pgPoolConfig, withDatabase } from '../../src/database/db-connection';
import { PostgresEventStore } from '../../src/event-store/postgres/postgres-event-store';
import { READ_MODEL_ENTITIES } from '../../projections/read-model-entities';

export interface DatabaseTarget {
  label: string;
  connection: DbConnection;
}

/** The embedded server always; the server at DATABASE_URL as well when it is set. */
export function databaseTargets(): DatabaseTarget[] {
  const raw = process.env.SENDENSE_TEST_EMBEDDED_DB;
  if (!raw) throw new Error('SENDENSE_TEST_EMBEDDED_DB is not set: run the tests through jest (its global setup starts PostgreSQL)');
  const targets: DatabaseTarget[] = [{ label: 'embedded PostgreSQL', connection: JSON.parse(raw) }];
  if (process.env.DATABASE_URL) targets.push({ label: 'PostgreSQL at DATABASE_URL', connection: connectionFromUrl(process.env.DATABASE_URL) });
  return targets;
}

export function embeddedTarget(): DatabaseTarget {
  return databaseTargets()[0];
}

export interface TestDatabase {
  connection: DbConnection;
  dataSource: DataSource;
  pool: Pool;
  store: PostgresEventStore;
  drop(): Promise<void>;
}

/** A fresh, migrated database of its own, dropped afterwards. */
export async function createTestDatabase(target: DatabaseTarget = embeddedTarget()): Promise<TestDatabase> {
  const name = `sendense_t_${randomBytes(6).toString('hex')}`;
  await adminQuery(target.connection, `CREATE DATABASE ${name}`);
  const connection = withDatabase(target.connection, name);
  const dataSource = createDataSource(connection, READ_MODEL_ENTITIES);
  await dataSource.initialize();
  await runMigrations(dataSource, connection);
  const pool = new Pool(pgPoolConfig(connection, 20));
  const store = new PostgresEventStore(pool, pgClientConfig(connection));
  return {
    connection,
    dataSource,
    pool,
    store,
    drop: async () => {
      await store.close();
      await pool.end();
      await dataSource.destroy();
      await adminQuery(target.connection, `DROP DATABASE IF EXISTS ${name} WITH (FORCE)`);
    },
  };
}

async function adminQuery(connection: DbConnection, sql: string): Promise<void> {
  const client = new Client(pgClientConfig(connection));
  await client.connect();
  try {
    await client.query(sql);
  } finally {
    await client.end();
  }
}

/** A DATABASE_URL for child processes (Unix-socket hosts go in the query string). */
export function connectionUrl(c: DbConnection): string {
  const auth = `${encodeURIComponent(c.user)}${c.password ? `:${encodeURIComponent(c.password)}` : ''}`;
  return c.host.startsWith('/')
    ? `postgres://${auth}@localhost/${c.database}?host=${encodeURIComponent(c.host)}&port=${c.port}`
    : `postgres://${auth}@${c.host}:${c.port}/${c.database}`;
}
