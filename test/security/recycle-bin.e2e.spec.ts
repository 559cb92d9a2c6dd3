import { createHash } from 'node:crypto';
import { existsSync, readdirSync, readFileSync, statSync } from 'node:fs';
import { join, relative } from 'node:path';
import { BackupLab, LAB_TOKEN } from '../support/backup-lab';
import { FakedClock } from '../support/faked-clock';
import { spawnSendense } from '../support/processes';

const DAY = 86_400_000;

/**
 * A thief of an operator token deletes restore points: each goes to the recycle bin with its files untouched, an admin
 * takes it back bit for bit, and only once the grace ends (the hub's clock moved by libfaketime) are its files removed.
 * A real hub process and agent, real qcow2 chains, the default grace of 7 days.
 */
describe('security: a deleted restore point waits in the recycle bin (real hub + agent, faked clock)', () => {
  const clock = new FakedClock('recycle');
  const lab = new BackupLab({ ...clock.env, SENDENSE_DELETE_GRACE_DAYS: '7', SENDENSE_RECYCLE_PURGE_INTERVAL_S: '1' });
  let operator = '';
  const ids: string[] = [];

  const as = async (token: string, method: string, path: string, body?: unknown) => {
    const res = await fetch(`http://127.0.0.1:${lab.apiPort}${path}`, { method, headers: { Authorization: `Bearer ${token}`, ...(body ? { 'Content-Type': 'application/json' } : {}) }, ...(body ? { body: JSON.stringify(body) } : {}) });
    const text = await res.text();
    return { status: res.status, body: text ? JSON.parse(text) : null };
  };
  /** The CLI as an operator runs it, with a token of their own. */
  const cli = async (token: string, args: string[]) => {
    const run = spawnSendense(args, { SENDENSE_HUB: `http://127.0.0.1:${lab.apiPort}`, SENDENSE_TOKEN: token });
    const { code } = await run.exited;
    return { code, output: run.output() };
  };
  const listed = async () => ((await lab.api('GET', `/api/v1/vms/vm1/restore-points?repositoryId=${lab.repositoryId}`)).body as { restorePointId: string }[]).map((p) => p.restorePointId);
  const bin = async () => (await lab.api('GET', '/api/v1/recycle-bin')).body as { restorePointId: string; status: string; recycled: { at: string; purgeAfter: string; by: string } }[];
  /** Every file of the repository with its SHA-256: what "untouched" and "bit-exact" are checked against. */
  const files = (): Record<string, string> => {
    const out: Record<string, string> = {};
    const walk = (dir: string) => {
      for (const name of readdirSync(dir)) {
        const path = join(dir, name);
        if (statSync(path).isDirectory()) walk(path);
        else out[relative(lab.repoRoot, path)] = createHash('sha256').update(readFileSync(path)).digest('hex');
      }
    };
    walk(lab.repoRoot);
    return out;
  };

  beforeAll(async () => {
    clock.requireLibrary();
    clock.ahead(0);
    await lab.start();
    for (const type of ['full', 'incremental', 'incremental'] as const) {
      const job = await lab.waitForJob(await lab.backup(type));
      expect(job.status).toBe('completed');
      ids.push(job.restorePointId);
    }
    operator = (await lab.api('POST', '/api/v1/tokens', { name: 'ops', role: 'operator' })).body.token;
  }, 180_000);
  afterAll(async () => {
    await lab.close();
    clock.remove();
  });

  it("moves an operator's delete to the recycle bin with every file as it was, and lists it there only", async () => {
    const before = files();
    const pointsBytesBefore = (await lab.api('GET', `/api/v1/repositories/${lab.repositoryId}`)).body.pointsBytes;
    const deleted = await as(operator, 'DELETE', `/api/v1/restore-points/${ids[1]}`);
    expect(deleted).toEqual({ status: 200, body: { restorePointId: ids[1], deleted: true, recycled: true, purgeAfter: expect.any(String) } });
    const grace = Date.parse(deleted.body.purgeAfter) - Date.now();
    expect(grace).toBeGreaterThan(7 * DAY - 60_000);
    expect(grace).toBeLessThan(7 * DAY + 60_000);
    expect(files()).toEqual(before);
    expect(await listed()).toEqual([ids[0], ids[2]]);
    // the repository counts it no more either, while its files' bytes still count: they are on the disk until the purge
    expect((await lab.api('GET', `/api/v1/repositories/${lab.repositoryId}`)).body).toMatchObject({ restorePoints: 2, pointsBytes: pointsBytesBefore });
    expect(await bin()).toEqual([expect.objectContaining({ restorePointId: ids[1], status: 'recycled', recycled: { at: expect.any(String), purgeAfter: deleted.body.purgeAfter, by: 'ops' } })]);
    const reported = async () => ((await lab.api('GET', '/api/v1/reports/protection')).body.vms as { vmId: string; recycledPoints: number; lastRestorePoint: { restorePointId: string } }[]).find((v) => v.vmId === 'vm1')!;
    expect(await reported()).toMatchObject({ recycledPoints: 1, lastRestorePoint: { restorePointId: ids[2] } });
    // the point and the points reading through it stay readable: a verify of the newest reads the recycled one's blocks
    expect((await lab.api('POST', `/api/v1/restore-points/${ids[2]}/verify`)).body.content).toMatchObject({ ok: true, digests: 'all' });
    // and the recycled point itself can be mounted, as docs/api.md says (an operator who deleted the wrong point needs
    // its files now, not after an admin's undelete); its purge waits for the mount
    const mount = await as(operator, 'POST', '/api/v1/restore/mounts', { restorePointId: ids[1], diskId: 'disk0' });
    expect(mount).toMatchObject({ status: 201, body: { status: 'ready', restorePointId: ids[1] } });
    const purge = await lab.api('POST', `/api/v1/restore-points/${ids[1]}/purge`);
    expect(purge.status).toBe(409);
    expect(purge.body.message).toMatch(/in use/);
    expect((await as(operator, 'DELETE', `/api/v1/restore/mounts/${mount.body.mountId}`)).status).toBe(200);
    expect(files()).toEqual(before);
  });

  it('is taken back by an admin only, bit-exact and verifiable in its place in the chain', async () => {
    const before = files();
    expect((await as(operator, 'POST', `/api/v1/restore-points/${ids[1]}/undelete`)).status).toBe(403);
    expect(await cli(operator, ['restore-points', 'undelete', ids[1]])).toMatchObject({ code: 1, output: expect.stringContaining('403') });
    expect(await cli(LAB_TOKEN, ['restore-points', 'undelete', ids[1]])).toEqual({ code: 0, output: expect.stringMatching(new RegExp(`^${ids[1]} .* undeleted\n$`)) });
    expect((await lab.api('GET', `/api/v1/restore-points/${ids[1]}`)).body).toMatchObject({ restorePointId: ids[1], status: 'available', recycled: null });
    expect(await listed()).toEqual(ids);
    expect(await bin()).toEqual([]);
    expect(((await lab.api('GET', '/api/v1/reports/protection')).body.vms as { vmId: string; recycledPoints: number }[]).find((v) => v.vmId === 'vm1')!.recycledPoints).toBe(0);
    expect(files()).toEqual(before);
    expect((await lab.api('POST', `/api/v1/restore-points/${ids[1]}/verify`)).body.content).toMatchObject({ ok: true, digests: 'all' });
    expect((await lab.api('POST', `/api/v1/restore-points/${ids[1]}/undelete`)).status).toBe(409);
  });

  it('removes its files only after the grace, by the hub clock, as part of the story of the delete', async () => {
    const deleted = await cli(operator, ['restore-points', 'delete', ids[1]]);
    expect(deleted).toEqual({ code: 0, output: expect.stringMatching(new RegExp(`^${ids[1]} is in the recycle bin until \\S+; an admin can undelete it until then\n$`)) });
    expect((await cli(operator, ['restore-points', 'recycle-bin'])).output).toMatch(new RegExp(`^${ids[1]} .* vm=vm1  deleted \\S+ by ops, purged after \\S+\n$`));
    const own = (await lab.api('GET', `/api/v1/restore-points/${ids[1]}`)).body.disks.map((d: { file: string }) => d.file) as string[];
    clock.ahead(6 * DAY);
    await new Promise((r) => setTimeout(r, 3000));
    expect((await bin()).map((p) => p.restorePointId)).toEqual([ids[1]]);
    for (const file of own) expect(existsSync(join(lab.repoRoot, file))).toBe(true);

    clock.ahead(7 * DAY + 3_600_000);
    await lab.until(async () => (await lab.api('GET', `/api/v1/restore-points/${ids[1]}`)).status === 404, 30_000, 'the recycled point to be purged');
    expect(await bin()).toEqual([]);
    for (const file of own) expect(existsSync(join(lab.repoRoot, file))).toBe(false);
    expect(await listed()).toEqual([ids[0], ids[2]]);
    expect((await lab.api('POST', `/api/v1/restore-points/${ids[2]}/verify`)).body.content).toMatchObject({ ok: true, digests: 'all' });

    const chain = (await lab.api('GET', `/api/v1/audit/streams/chain-vm1-${lab.repositoryId}?limit=1000`)).body.events as { eventId: string; type: string; data: { restorePointId: string }; metadata: { correlationId: string; causationId: string } }[];
    const mine = chain.filter((e) => e.data.restorePointId === ids[1]).slice(-3);
    expect(mine.map((e) => e.type)).toEqual(['RestorePointRecycled', 'RestorePointDeleteStarted', 'RestorePointDeleted']);
    expect(mine[1].metadata).toMatchObject({ correlationId: mine[0].metadata.correlationId, causationId: mine[0].eventId });
  });

  it('purges at once only when an admin asks', async () => {
    expect((await as(operator, 'POST', `/api/v1/restore-points/${ids[2]}/purge`)).status).toBe(403);
    expect((await lab.api('GET', `/api/v1/restore-points/${ids[2]}`)).status).toBe(200);
    expect(await cli(LAB_TOKEN, ['restore-points', 'purge', ids[2]])).toEqual({ code: 0, output: `${ids[2]} purged: its files are removed\n` });
    expect(await listed()).toEqual([ids[0]]);
    expect(await bin()).toEqual([]);
  });
});
