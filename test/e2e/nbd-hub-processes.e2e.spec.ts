import { chmodSync, mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { STANDARD_CHAIN } from '../fixtures/qcow2/chain-builder';
import { buildRepositoryChain } from '../fixtures/qcow2/repository-chain';
import { isRunning, nbdinfoJson, pidsMentioning } from '../fixtures/qemu-nbd-processes';
import { freePort, spawnSendense, SpawnedCli, waitForHttp } from '../support/processes';
import { connectionUrl, createTestDatabase, TestDatabase } from '../support/test-database';

const TOKEN = 'e2e-admin-token-0123456789';
const headers = { Authorization: `Bearer ${TOKEN}`, 'Content-Type': 'application/json' };

/** Real `sendense hub` processes sharing one real database. */
describe('NBD leases and exports across hub processes', () => {
  let db: TestDatabase;
  let dir: string;
  const hubs: SpawnedCli[] = [];

  beforeEach(async () => {
    db = await createTestDatabase();
    dir = mkdtempSync(join(tmpdir(), 'sendense-nbd-e2e-'));
    chmodSync(dir, 0o755);
  });
  afterEach(async () => {
    for (const h of hubs.splice(0)) if (h.child.exitCode === null && h.child.signalCode === null) {
      h.child.kill('SIGTERM');
      await h.exited;
    }
    for (const pid of await pidsMentioning(dir)) process.kill(pid, 'SIGKILL');
    rmSync(dir, { recursive: true, force: true });
    await db.drop();
  });

  async function startHub(name: string, port: number): Promise<string> {
    const hub = spawnSendense(['hub'], {
      DATABASE_URL: connectionUrl(db.connection),
      SENDENSE_DATA_DIR: join(dir, name),
      SENDENSE_API_PORT: String(port),
      SENDENSE_ADMIN_TOKEN: TOKEN,
      SENDENSE_HOST_ID: 'e2e-host',
      SENDENSE_SSH_PORT: '0',
      SENDENSE_SSH_BIND: '127.0.0.1',
      SENDENSE_NBD_PORTS: '12400-12500',
      // plain (tls: false) restore-point exports, on loopback only, so nbdinfo needs no key
      SENDENSE_NBD_BIND: '127.0.0.1',
      SENDENSE_LOG_LEVEL: 'warn',
    });
    hubs.push(hub);
    const url = `http://127.0.0.1:${port}`;
    await waitForHttp(`${url}/api/v1/health`);
    return url;
  }

  const api = async (url: string, method: string, path: string, body?: object) => {
    const res = await fetch(`${url}${path}`, { method, headers, body: body ? JSON.stringify(body) : undefined });
    return { status: res.status, body: (await res.json()) as any };
  };

  /** A repository holding a chain of four points of one disk, registered and rescanned on the hub at url. */
  async function repositoryWithChain(url: string): Promise<void> {
    const root = join(dir, 'repo');
    await buildRepositoryChain(root, join(dir, 'staging'), 'vm1', ['disk0']);
    const registered = await api(url, 'POST', '/api/v1/repositories', { name: 'main', kind: 'local', path: root });
    expect(registered.status).toBe(201);
    expect((await api(url, 'POST', `/api/v1/repositories/${registered.body.repositoryId}/rescan`, {})).status).toBe(201);
  }

  /** Opens a plain export of a point's disk0 and says what serves it. */
  async function exportPoint(url: string, point: string) {
    const opened = await api(url, 'POST', `/api/v1/restore-points/${point}/exports`, { tls: false });
    expect(opened.status).toBe(201);
    const [disk] = opened.body.disks;
    const process = (await api(url, 'GET', '/api/v1/nbd/processes')).body.find((p: { port: number; state: string }) => p.port === disk.port && p.state === 'running');
    return { exportId: opened.body.exportId as string, port: disk.port as number, exportName: disk.exportName as string, leaseId: process.leaseId as string, pid: process.pid as number };
  }

  it('two hubs on one database never lease one port twice: 101 distinct, the 102nd refused', async () => {
    const [a, b] = [await startHub('a', await freePort()), await startHub('b', await freePort())];
    const results = await Promise.all(Array.from({ length: 101 }, (_, i) => api(i % 2 ? a : b, 'POST', '/api/v1/nbd/ports/allocate', { jobId: `job-${i}`, diskId: 'disk0' })));
    expect(results.map((r) => r.status)).toEqual(Array(101).fill(201));
    expect(new Set(results.map((r) => r.body.port)).size).toBe(101);
    const overflowA = await api(a, 'POST', '/api/v1/nbd/ports/allocate', { jobId: 'x', diskId: 'd' });
    const overflowB = await api(b, 'POST', '/api/v1/nbd/ports/allocate', { jobId: 'y', diskId: 'd' });
    expect([overflowA.status, overflowB.status]).toEqual([409, 409]);
    expect(overflowB.body.message).toContain('NBD port pool exhausted');
  });

  it('refuses to release a port while another hub process serves it, and frees it once that hub stopped the export', async () => {
    const [a, b] = [await startHub('a', await freePort()), await startHub('b', await freePort())];
    await repositoryWithChain(a);
    const started = await exportPoint(a, 'rp-4');

    const refused = await api(b, 'DELETE', `/api/v1/nbd/ports/${started.port}`);
    expect(refused.status).toBe(409);
    expect(refused.body.message).toBe(`port ${started.port} serves a running export (lease ${started.leaseId}); stop it first: DELETE /api/v1/nbd/ports/job/pe-${started.exportId} stops the job's exports and releases its ports`);
    const stream = async () => (await api(b, 'GET', '/api/v1/audit/streams/nbd-ports-e2e-host')).body.events.map((e: { type: string }) => e.type);
    expect(await stream()).toEqual(['NbdPortAllocated']);
    expect(isRunning(started.pid)).toBe(true);
    expect((await nbdinfoJson(`nbd://127.0.0.1:${started.port}/${started.exportName}`))['export-size']).toBe(STANDARD_CHAIN.virtualSize);

    expect((await api(b, 'DELETE', `/api/v1/restore-point-exports/${started.exportId}`)).status).toBe(409);
    expect((await api(a, 'DELETE', `/api/v1/restore-point-exports/${started.exportId}`)).status).toBe(200);
    expect(isRunning(started.pid)).toBe(false);
    expect(await stream()).toEqual(['NbdPortAllocated', 'NbdPortReleased']);
    expect((await api(b, 'DELETE', `/api/v1/nbd/ports/${started.port}`)).status).toBe(404);
  });

  it('after a hub SIGKILL with 3 exports, the restart adopts the live ones and records the dead one; shutdown leaves nothing', async () => {
    const port = await freePort();
    let url = await startHub('solo', port);
    await repositoryWithChain(url);
    const exports = [];
    for (const point of ['rp-4', 'rp-3', 'rp-2']) exports.push(await exportPoint(url, point));
    hubs[0].child.kill('SIGKILL');
    await hubs[0].exited;
    expect(exports.every((e) => isRunning(e.pid))).toBe(true);
    process.kill(exports[2].pid, 'SIGKILL');

    url = await startHub('solo', port);
    const processes = (await api(url, 'GET', '/api/v1/nbd/processes')).body;
    const byLease = (leaseId: string) => processes.find((p: { leaseId: string }) => p.leaseId === leaseId);
    expect(byLease(exports[0].leaseId)).toMatchObject({ state: 'running', pid: exports[0].pid });
    expect(byLease(exports[1].leaseId)).toMatchObject({ state: 'running', pid: exports[1].pid });
    expect(byLease(exports[2].leaseId)).toMatchObject({ state: 'exited', error: expect.stringContaining('no longer running') });
    const leased = (await api(url, 'GET', '/api/v1/nbd/ports')).body.map((l: { leaseId: string }) => l.leaseId).sort();
    expect(leased).toEqual([exports[0].leaseId, exports[1].leaseId].sort());
    expect((await nbdinfoJson(`nbd://127.0.0.1:${exports[0].port}/${exports[0].exportName}`))['export-size']).toBe(STANDARD_CHAIN.virtualSize);

    expect((await api(url, 'DELETE', `/api/v1/restore-point-exports/${exports[0].exportId}`)).status).toBe(200);
    expect(isRunning(exports[0].pid)).toBe(false);

    hubs[1].child.kill('SIGTERM');
    expect((await hubs[1].exited).code).toBe(0);
    expect(await pidsMentioning(dir)).toEqual([]);
    const [row] = await db.dataSource.query(`SELECT count(*)::int AS active FROM rm_nbd_leases WHERE status = 'active'`);
    expect(row.active).toBe(0);
  });
});
