import { Client } from 'pg';
import { DbConnection, pgClientConfig } from './db-connection';

/** Work that every hub on one database does one at a time, each under a PostgreSQL advisory lock of its own. */
export const HUB_TURNS = {
  migrations: 1,
  /**
   * A rescan or a sync decides from the read model whether a restore point id is new to the hub: two at once would
   * both find it new, record it twice, and stop the restore-points read model for good.
   */
  pointIds: 2,
} as const;

const NAMESPACE = 24210;

/**
 * Runs `work` while this session holds the lock, waiting for any other holder, on this hub or another. The lock
 * lives in a session of its own rather than in a pooled connection, so it is never handed to other work, and the
 * server frees it when this process dies.
 */
export async function inHubTurn<T>(connection: DbConnection, turn: keyof typeof HUB_TURNS, work: () => Promise<T>): Promise<T> {
  const session = new Client(pgClientConfig(connection, `sendense-${turn}`));
  // a session dropped meanwhile frees the lock; the work's own queries say so, not an unhandled 'error' event
  session.on('error', () => undefined);
  await session.connect();
  try {
    await session.query(`SELECT pg_advisory_lock($1, $2)`, [NAMESPACE, HUB_TURNS[turn]]);
    return await work();
  } finally {
    await session.end().catch(() => undefined);
  }
}
