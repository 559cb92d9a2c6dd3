import { parse } from 'pg-connection-string';
import type { ClientConfig, PoolConfig } from 'pg';

/** Where the hub's PostgreSQL lives: the embedded server's socket or an external server's URL. */
export interface DbConnection {
  host: string;
  port: number;
  user: string;
  password?: string;
  database: string;
  ssl?: boolean;
  origin: 'embedded' | 'external';
}

export function connectionFromUrl(url: string): DbConnection {
  const parsed = parse(url);
  return {
    host: parsed.host ?? '127.0.0.1',
    port: parsed.port ? Number(parsed.port) : 5432,
    user: parsed.user ?? 'postgres',
    password: parsed.password ?? undefined,
    database: parsed.database ?? 'postgres',
    ssl: Boolean(parsed.ssl),
    origin: 'external',
  };
}

export function pgClientConfig(c: DbConnection, applicationName = 'sendense'): ClientConfig {
  return {
    host: c.host,
    port: c.port,
    user: c.user,
    password: c.password,
    database: c.database,
    ssl: c.ssl ? { rejectUnauthorized: false } : undefined,
    application_name: applicationName,
  };
}

export function pgPoolConfig(c: DbConnection, max = 10): PoolConfig {
  return { ...pgClientConfig(c), max };
}

export function withDatabase(c: DbConnection, database: string): DbConnection {
  return { ...c, database };
}

/**
 * The exit code of a hub that stops because it lost its database (EX_TEMPFAIL): as after a crash, its service
 * manager starts it again (the unit's Restart=on-failure), and the new process recovers what it left.
 */
export const DATABASE_LOST_EXIT_CODE = 75;
