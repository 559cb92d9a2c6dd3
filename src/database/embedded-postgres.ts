import { randomBytes } from 'node:crypto';
import { chmodSync, chownSync, existsSync, mkdirSync, readFileSync, rmSync, statSync, writeFileSync } from 'node:fs';
import { dirname, join } from 'node:path';
import { Client } from 'pg';
import { ChildProcessHandle, describeFailure, isRunningState, ProcessError, readCmdline, readLogTail, readProcStat, runProcess } from '../process';
import { MAX_SOCKET_PATH } from '../process/socket-path';
import { DbConnection, pgClientConfig } from './db-connection';
import { blockingAncestor, postgresRuntime, PostgresRuntime } from './postgres-runtime';

const PORT = 5432;

export interface EmbeddedDatabase {
  connection: DbConnection;
  stop(): Promise<void>;
  /** Settles, with why, only when the server ends without being stopped (killed, crashed). */
  died: Promise<string>;
}

type Log = (level: 'info' | 'warn' | 'debug', message: string) => void;

/**
 * A real PostgreSQL server under the data dir, listening only on a Unix socket
 * inside its own directory: no TCP port to collide with a system server.
 */
export async function startEmbeddedPostgres(dataDir: string, log: Log): Promise<EmbeddedDatabase> {
  const databaseDir = join(dataDir, 'postgres');
  const socketPath = join(databaseDir, `.s.PGSQL.${PORT}`);
  if (Buffer.byteLength(socketPath) > MAX_SOCKET_PATH) {
    throw new Error(`SENDENSE_DATA_DIR is too long for the embedded database socket (${Buffer.byteLength(socketPath)} > ${MAX_SOCKET_PATH} bytes): choose a shorter path or set DATABASE_URL`);
  }
  mkdirSync(dataDir, { recursive: true });
  // The server runs as the unprivileged postgres user, which must be able to pass through the data dir.
  chmodSync(dataDir, statSync(dataDir).mode | 0o011);
  assertReachableByOthers(dataDir);
  const password = readOrCreatePassword(join(dataDir, 'postgres.password'));
  const runtime = await postgresRuntime(dataDir);
  if (!existsSync(join(databaseDir, 'PG_VERSION'))) {
    log('info', `initialising embedded PostgreSQL in ${databaseDir}`);
    await initialise(runtime, databaseDir, password, log);
  }
  const owner = claimDatabase(dataDir);
  await stopLeftoverServer(databaseDir, log);
  const connection: DbConnection = { host: databaseDir, port: PORT, user: 'postgres', password, database: 'postgres', origin: 'embedded' };
  const server = await startServer(runtime, databaseDir, connection, log).catch((error: unknown) => {
    owner.release();
    throw error;
  });
  return {
    connection,
    stop: async () => {
      await server.stop();
      owner.release();
    },
    died: server.died,
  };
}

/**
 * Which process runs the embedded server of a data dir: its pid and start time (a pid alone may be reused). A server
 * left running by a hub that was killed is taken over at the next start; one whose hub still runs is that hub's
 * database, and a second hub started on the same data dir must not stop it from under it.
 */
function claimDatabase(dataDir: string): { release(): void } {
  const file = join(dataDir, 'postgres.owner');
  const [pid, startTime] = existsSync(file) ? readFileSync(file, 'utf8').trim().split(' ') : [];
  const stat = pid ? readProcStat(Number(pid)) : undefined;
  if (pid && Number(pid) !== process.pid && stat && isRunningState(stat.state) && stat.startTime === startTime) {
    throw new Error(`another hub (pid ${pid}) runs the embedded PostgreSQL of SENDENSE_DATA_DIR ${dataDir}: stop it first, or give this hub a data directory of its own`);
  }
  writeFileSync(file, `${process.pid} ${readProcStat(process.pid)?.startTime ?? ''}\n`, { mode: 0o600 });
  return { release: () => rmSync(file, { force: true }) };
}

/** PostgreSQL refuses to run as root, so as root it runs as 'postgres', which needs passage through every parent. */
function assertReachableByOthers(dir: string): void {
  if (process.getuid?.() !== 0) return;
  const blocked = blockingAncestor(dirname(dir));
  if (blocked === null) return;
  const mode = statSync(blocked).mode;
  throw new Error(
    `the embedded PostgreSQL runs as the unprivileged user 'postgres', which cannot enter ${blocked} (mode ${(mode & 0o777).toString(8).padStart(4, '0')}); ` +
      `choose a SENDENSE_DATA_DIR it can reach (e.g. /var/lib/sendense), grant passage with 'setfacl -m u:postgres:x ${blocked}', or set DATABASE_URL`,
  );
}

async function initialise(runtime: PostgresRuntime, databaseDir: string, password: string, log: Log): Promise<void> {
  mkdirSync(databaseDir, { recursive: true, mode: 0o700 });
  const pwfile = join(dirname(databaseDir), `.initdb-password-${process.pid}`);
  writeFileSync(pwfile, password + '\n', { mode: 0o600 });
  if (runtime.uid !== undefined) {
    chownSync(databaseDir, runtime.uid, runtime.gid!);
    chownSync(pwfile, runtime.uid, runtime.gid!);
  }
  try {
    await run(runtime, 'initdb', ['--pgdata', databaseDir, '--auth=password', '--username=postgres', `--pwfile=${pwfile}`, '--encoding=UTF8', '--locale=C'], log);
  } finally {
    rmSync(pwfile, { force: true });
  }
}

async function run(runtime: PostgresRuntime, program: string, args: string[], log: Log): Promise<void> {
  try {
    const result = await runProcess(join(runtime.home, 'bin', program), args, { user: userOf(runtime) });
    log('debug', (result.stdout + result.stderr).trim());
  } catch (error) {
    if (!(error instanceof ProcessError)) throw error;
    const output = (error.stdout + error.stderr).trim();
    log('debug', output);
    throw new Error(`${program} failed (${describeFailure(error.failure)}): ${output.split('\n').slice(-5).join(' / ')}`);
  }
}

/**
 * Starts the postmaster as our child; it is ready once it accepts connections. In its own process
 * group, so a terminal's Ctrl-C reaches the hub, which stops the database last; it outlives a
 * SIGKILL of the hub, and the next start takes it over (stopLeftoverServer). Its log is
 * <dataDir>/postgres.log.
 */
async function startServer(runtime: PostgresRuntime, databaseDir: string, connection: DbConnection, log: Log): Promise<{ stop: () => Promise<void>; died: Promise<string> }> {
  const logFile = join(dirname(databaseDir), 'postgres.log');
  const server = ChildProcessHandle.spawn(
    join(runtime.home, 'bin', 'postgres'),
    ['-D', databaseDir, '-p', String(PORT), '-k', databaseDir, '-c', 'listen_addresses=', '-c', 'max_connections=200'],
    { detached: true, holdsEventLoop: true, logFile, user: userOf(runtime) },
  );
  let stopping = false;
  const stop = async () => {
    stopping = true;
    server.signal('SIGINT');
    await server.exited;
  };
  const died = new Promise<string>((resolve) => {
    void server.exited.then((status) => {
      if (stopping) return;
      const how = status.spawnError ?? (status.signal ? `on signal ${status.signal}` : `with exit code ${status.code}`);
      resolve(`the embedded PostgreSQL in ${databaseDir} ended ${how}: ${readLogTail(logFile, 3).trim().split('\n').join(' / ')}`);
    });
  });
  const exited = server.exited.then((status) => {
    const how = status.spawnError ?? (status.signal ? status.signal : `exit ${status.code}`);
    throw new Error(`embedded PostgreSQL in ${databaseDir} did not start (${how}): ${readLogTail(logFile, 5).trim().split('\n').join(' / ')}`);
  });
  const ready = waitUntilAccepting(connection);
  try {
    await Promise.race([ready, exited]);
  } catch (error) {
    await stop();
    throw error;
  } finally {
    exited.catch(() => undefined);
    ready.catch(() => undefined);
  }
  log('debug', readLogTail(logFile).trim());
  return { stop, died };
}

function userOf(runtime: PostgresRuntime): { uid: number; gid: number } | undefined {
  return runtime.uid === undefined ? undefined : { uid: runtime.uid, gid: runtime.gid! };
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
  const stat = readProcStat(pid);
  return stat !== undefined && isRunningState(stat.state) && (readCmdline(pid) ?? []).some((arg) => arg.includes('postgres'));
}

/** Crash recovery of a large database can take a while; a server that dies on the way ends the wait at once (startServer). */
async function waitUntilAccepting(connection: DbConnection): Promise<void> {
  const deadline = Date.now() + 120_000;
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
