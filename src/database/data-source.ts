import { Client } from 'pg';
import { DataSource } from 'typeorm';
import { MIGRATIONS } from '../../migrations';
import { DbConnection, pgClientConfig } from './db-connection';

/** The read-model entities come from the composition root: the platform knows no read model. */
export function createDataSource(connection: DbConnection, entities: Function[], poolSize = 10): DataSource {
  return new DataSource({
    type: 'postgres',
    host: connection.host,
    port: connection.port,
    username: connection.user,
    password: connection.password,
    database: connection.database,
    ssl: connection.ssl ? { rejectUnauthorized: false } : undefined,
    entities,
    migrations: MIGRATIONS,
    migrationsTransactionMode: 'each',
    synchronize: false,
    logging: false,
    extra: { max: poolSize, application_name: 'sendense' },
  });
}

/** Two hubs starting on one database take turns: the migration run is serialised by an advisory lock. */
export async function runMigrations(dataSource: DataSource, connection: DbConnection): Promise<void> {
  const lock = new Client(pgClientConfig(connection, 'sendense-migrations'));
  await lock.connect();
  try {
    await lock.query(`SELECT pg_advisory_lock(24210, 1)`);
    await dataSource.runMigrations();
  } finally {
    await lock.end().catch(() => undefined);
  }
}
