import { DataSource } from 'typeorm';
import { MIGRATIONS } from '../../migrations';
import { DbConnection } from './db-connection';
import { inHubTurn } from './hub-turns';

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

/** Two hubs starting on one database take turns at migrating it. */
export async function runMigrations(dataSource: DataSource, connection: DbConnection): Promise<void> {
  await inHubTurn(connection, 'migrations', () => dataSource.runMigrations());
}
