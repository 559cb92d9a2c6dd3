import { chmodSync, existsSync, mkdtempSync, readFileSync, rmSync, statSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { relayTo } from '../support/db-relay';
import { freePort, processesMentioning, spawnSendense, waitForHttp } from '../support/processes';
import { createTestDatabase } from '../support/test-database';

/** `sendense hub` as a newcomer runs it: no database configured, so it starts its own embedded PostgreSQL. */
describe('sendense hub process on embedded defaults', () => {
  let dir: string;
  beforeEach(() => {
    dir = mkdtempSync(join(tmpdir(), 'sendense-hub-'));
    chmodSync(dir, 0o755);
  });
  afterEach(() => {
    for (const p of processesMentioning(dir)) process.kill(p.pid, 'SIGKILL');
    rmSync(dir, { recursive: true, force: true });
  });

  it('starts with an embedded database, writes a 0600 admin token, and stops everything on SIGTERM', async () => {
    const port = await freePort();
    const dataDir = join(dir, 'var');
    const hub = spawnSendense(['hub'], { SENDENSE_DATA_DIR: dataDir, SENDENSE_API_PORT: String(port) });
    await waitForHttp(`http://127.0.0.1:${port}/api/v1/health`, 30_000, hub);

    const health = await (await fetch(`http://127.0.0.1:${port}/api/v1/health`)).json();
    expect(health).toEqual({ status: 'ok', eventStore: 'postgres', database: 'embedded' });
    expect(statSync(join(dataDir, 'admin.token')).mode & 0o777).toBe(0o600);
    expect(hub.output()).toContain(`admin token is in ${join(dataDir, 'admin.token')}`);
    expect(processesMentioning(join(dataDir, 'postgres')).length).toBeGreaterThan(0);
    expect(readFileSync(join(dataDir, 'postgres.log'), 'utf8')).toContain('database system is ready to accept connections');
    expect((await fetch(`http://127.0.0.1:${port}/api/v1/projections`)).status).toBe(401);

    hub.child.kill('SIGTERM');
    expect(await hub.exited).toEqual({ code: 0, signal: null });
    expect(processesMentioning(dataDir)).toEqual([]);
  });

  it('a Ctrl-C and a SIGTERM arriving together still stop everything cleanly', async () => {
    const port = await freePort();
    const dataDir = join(dir, 'var');
    const hub = spawnSendense(['hub'], { SENDENSE_DATA_DIR: dataDir, SENDENSE_API_PORT: String(port) });
    await waitForHttp(`http://127.0.0.1:${port}/api/v1/health`, 30_000, hub);
    hub.child.kill('SIGINT');
    hub.child.kill('SIGTERM');
    expect(await hub.exited).toEqual({ code: 0, signal: null });
    expect(processesMentioning(dataDir)).toEqual([]);
  });

  it('after a SIGKILL, the next start takes over the leftover database server and keeps the data', async () => {
    const port = await freePort();
    const env = { SENDENSE_DATA_DIR: join(dir, 'var'), SENDENSE_API_PORT: String(port), SENDENSE_ADMIN_TOKEN: 'restart-admin-token-0123' };
    const auth = { Authorization: `Bearer ${env.SENDENSE_ADMIN_TOKEN}`, 'Content-Type': 'application/json' };
    const first = spawnSendense(['hub'], env);
    await waitForHttp(`http://127.0.0.1:${port}/api/v1/health`, 30_000, first);
    const issued = await fetch(`http://127.0.0.1:${port}/api/v1/tokens`, { method: 'POST', headers: auth, body: JSON.stringify({ name: 'survivor' }) });
    expect(issued.status).toBe(201);
    first.child.kill('SIGKILL');
    await first.exited;
    expect(processesMentioning(join(dir, 'var', 'postgres')).length).toBeGreaterThan(0);

    const second = spawnSendense(['hub'], env);
    await waitForHttp(`http://127.0.0.1:${port}/api/v1/health`, 30_000, second);
    const tokens = (await (await fetch(`http://127.0.0.1:${port}/api/v1/tokens`, { headers: auth })).json()) as { name: string }[];
    expect(tokens.map((t: { name: string }) => t.name)).toEqual(['survivor']);
    second.child.kill('SIGTERM');
    expect((await second.exited).code).toBe(0);
    expect(processesMentioning(join(dir, 'var'))).toEqual([]);
  });

  it("a second hub on a live hub's data dir refuses to start and leaves the first hub's database running", async () => {
    const [port, other] = [await freePort(), await freePort()];
    const env = { SENDENSE_DATA_DIR: join(dir, 'var'), SENDENSE_ADMIN_TOKEN: 'first-admin-token-0123' };
    const auth = { Authorization: `Bearer ${env.SENDENSE_ADMIN_TOKEN}`, 'Content-Type': 'application/json' };
    const first = spawnSendense(['hub'], { ...env, SENDENSE_API_PORT: String(port) });
    await waitForHttp(`http://127.0.0.1:${port}/api/v1/health`, 30_000, first);
    const postgres = processesMentioning(join(dir, 'var', 'postgres')).map((p) => p.pid).sort();

    const second = spawnSendense(['hub'], { ...env, SENDENSE_API_PORT: String(other) });
    expect((await second.exited).code).toBe(1);
    expect(second.output()).toContain(`another hub (pid ${first.child.pid}) runs the embedded PostgreSQL of SENDENSE_DATA_DIR ${join(dir, 'var')}`);
    // the first hub's database never stopped: the same server, and a write that needs it goes through
    expect(processesMentioning(join(dir, 'var', 'postgres')).map((p) => p.pid).sort()).toEqual(postgres);
    const issued = await fetch(`http://127.0.0.1:${port}/api/v1/tokens`, { method: 'POST', headers: auth, body: JSON.stringify({ name: 'after-the-second' }) });
    expect(issued.status).toBe(201);
    first.child.kill('SIGTERM');
    expect((await first.exited).code).toBe(0);
    expect(processesMentioning(join(dir, 'var'))).toEqual([]);
  });

  it('a hub whose embedded PostgreSQL dies stops at once (exit code 75, saying why), and starts again on it', async () => {
    const port = await freePort();
    const env = { SENDENSE_DATA_DIR: join(dir, 'var'), SENDENSE_API_PORT: String(port), SENDENSE_ADMIN_TOKEN: 'db-lost-admin-token-0123' };
    const hub = spawnSendense(['hub'], env);
    await waitForHttp(`http://127.0.0.1:${port}/api/v1/health`, 30_000, hub);
    const postmaster = Number(readFileSync(join(dir, 'var', 'postgres', 'postmaster.pid'), 'utf8').split('\n')[0]);
    process.kill(postmaster, 'SIGKILL');
    expect(await hub.exited).toEqual({ code: 75, signal: null });
    expect(hub.output()).toMatch(/sendense hub: the embedded PostgreSQL in .* ended on signal SIGKILL: .*; stopping, for the restart to start it again/);
    // what its service manager does: start it again, on its data and its database
    const again = spawnSendense(['hub'], env);
    await waitForHttp(`http://127.0.0.1:${port}/api/v1/health`, 30_000, again);
    expect((await fetch(`http://127.0.0.1:${port}/api/v1/repositories`, { headers: { Authorization: 'Bearer db-lost-admin-token-0123' } })).status).toBe(200);
    again.child.kill('SIGTERM');
    expect(await again.exited).toEqual({ code: 0, signal: null });
  }, 90_000);

  it('refuses bad configuration with exit code 2 and a message naming every bad setting', async () => {
    const hub = spawnSendense(['hub'], { SENDENSE_DATA_DIR: join(dir, 'var'), SENDENSE_API_PORT: 'eighty', DATABASE_URL: 'mysql://x' });
    expect((await hub.exited).code).toBe(2);
    expect(hub.output()).toContain('SENDENSE_API_PORT must be a TCP port number between 1 and 65535, got "eighty"');
    expect(hub.output()).toContain('DATABASE_URL must be a postgres:// or postgresql:// URL');
  });

  it('refuses a bad restore setting together with the others before anything starts', async () => {
    const dataDir = join(dir, 'var');
    const hub = spawnSendense(['hub'], { SENDENSE_DATA_DIR: dataDir, SENDENSE_API_PORT: String(await freePort()), SENDENSE_RESTORE_IDLE_S: 'forever', SENDENSE_LOG_LEVEL: 'loud' });
    expect((await hub.exited).code).toBe(2);
    expect(hub.output()).toContain('SENDENSE_RESTORE_IDLE_S must be an integer number of seconds from 1 to 604800, got "forever"');
    expect(hub.output()).toContain('SENDENSE_LOG_LEVEL must be one of');
    expect(processesMentioning(dataDir)).toEqual([]);
    expect(existsSync(join(dataDir, 'postgres'))).toBe(false);
  });

  it('says clearly when the API port is taken', async () => {
    const port = await freePort();
    const blocker = require('node:net').createServer().listen(port, '127.0.0.1');
    try {
      const hub = spawnSendense(['hub'], { SENDENSE_DATA_DIR: join(dir, 'var'), SENDENSE_API_PORT: String(port) });
      expect((await hub.exited).code).toBe(1);
      expect(hub.output()).toContain(`SENDENSE_API_PORT ${port} on 127.0.0.1 is already in use`);
      expect(processesMentioning(join(dir, 'var'))).toEqual([]);
    } finally {
      blocker.close();
    }
  });
});

describe('sendense hub with a data dir the database user cannot reach', () => {
  it('explains what to do instead of failing obscurely', async () => {
    const locked = mkdtempSync(join(tmpdir(), 'sendense-locked-'));
    try {
      const hub = spawnSendense(['hub'], { SENDENSE_DATA_DIR: join(locked, 'var'), SENDENSE_API_PORT: String(await freePort()) });
      expect((await hub.exited).code).toBe(1);
      expect(hub.output()).toContain(`cannot enter ${locked} (mode 0700)`);
      expect(hub.output()).toContain('set DATABASE_URL');
    } finally {
      rmSync(locked, { recursive: true, force: true });
    }
  });
});

describe('sendense hub on a database it can lose', () => {
  let dir: string;
  beforeEach(() => {
    dir = mkdtempSync(join(tmpdir(), 'sendense-hub-fence-'));
  });
  afterEach(() => {
    for (const p of processesMentioning(dir)) process.kill(p.pid, 'SIGKILL');
    rmSync(dir, { recursive: true, force: true });
  });

  it('a hub cut off from its database stops itself (exit code 75, saying why) before another hub could take its work over', async () => {
    const db = await createTestDatabase();
    const relay = await relayTo(db.connection);
    try {
      const port = await freePort();
      const { user, password, database } = relay.connection;
      const credentials = password ? `${user}:${encodeURIComponent(password)}` : user;
      const hub = spawnSendense(['hub'], { SENDENSE_DATA_DIR: join(dir, 'var'), SENDENSE_API_PORT: String(port), DATABASE_URL: `postgres://${credentials}@127.0.0.1:${relay.connection.port}/${database}`, SENDENSE_GONE_HUB_AFTER_S: '16' });
      await waitForHttp(`http://127.0.0.1:${port}/api/v1/health`, 30_000, hub);
      const cutAt = Date.now();
      await relay.cut();
      expect(await hub.exited).toEqual({ code: 75, signal: null });
      // half of the 16 s after which another hub takes its work over, at its second look in a row (every 5 s) that
      // missed its lock, and within the 16 s
      expect(Date.now() - cutAt).toBeLessThan(16_000);
      expect(hub.output()).toMatch(/sendense hub: this hub process has not held its liveness lock for \d+ s \(the database unreachable or refusing it\)/);
    } finally {
      await relay.cut().catch(() => undefined);
      await db.drop();
    }
  }, 60_000);
});
