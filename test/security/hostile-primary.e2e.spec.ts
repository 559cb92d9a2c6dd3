import { execFile } from 'node:child_process';
import { createHash } from 'node:crypto';
import { existsSync, mkdirSync, mkdtempSync, readdirSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { promisify } from 'node:util';
import { BackupLab } from '../support/backup-lab';
import { diskMeta, digestsOf, HostilePrimary, ServedDisk, ServedPoint } from './hostile-primary';

const run = promisify(execFile);
const MiB = 1024 * 1024;
const SIZE = 4 * MiB;
const fileSha = (file: string) => createHash('sha256').update(readFileSync(file)).digest('hex');

/**
 * A compromised primary hub against the hub that pulls from it: a real hub (its own PostgreSQL, its real SSH client
 * pinning the primary's host key) syncs from a server speaking the sync protocol over the product's own SSH tunnel,
 * exporting real qcow2 files through qemu-nbd with TLS, whose metadata is hostile. Every hostile point is refused
 * with its reason on the run's record, nothing outside the repository is touched, the genuine points land and verify.
 */
describe('a compromised primary hub cannot harm the hub that pulls from it', () => {
  const target = new BackupLab({ DATABASE_URL: '' });
  let primary: HostilePrimary;
  let work: string;
  let canaryDir: string;
  let canary: string;
  let canarySha: string;
  const now = Date.now();
  const at = (msAgo: number) => new Date(now - msAgo).toISOString();
  const ids = { good1: 'rp-20261126080000-0000g001', good2: 'rp-20261126090000-0000g002', future: 'rp-20990101000000-0000f001', host: 'rp-20261126083000-0000h001' };

  beforeAll(async () => {
    work = mkdtempSync(join(tmpdir(), 'sendense-hostile-'));
    // the file a traversing vmId aims at: someone else's image next to (not in) the target's repository
    canaryDir = join(work, 'outside');
    canary = join(canaryDir, 'disk1', 'rp-evil.qcow2');
    mkdirSync(join(canaryDir, 'disk1'), { recursive: true });
    await run('qemu-img', ['create', '-q', '-f', 'qcow2', canary, String(SIZE)]);
    await run('qemu-io', ['-f', 'qcow2', '-c', `write -P 0x5a 0 ${MiB}`, canary]);
    canarySha = fileSha(canary);

    // genuine data: a full and an incremental on it, and a full of another VM; real files, real digests
    const images = join(work, 'primary-images');
    mkdirSync(images);
    const full = join(images, 'good1.qcow2');
    await run('qemu-img', ['create', '-q', '-f', 'qcow2', full, String(SIZE)]);
    await run('qemu-io', ['-f', 'qcow2', '-c', `write -P 0x11 0 ${MiB}`, '-c', `write -P 0x12 ${3 * MiB} 65536`, full]);
    const incr = join(images, 'good2.qcow2');
    await run('qemu-img', ['create', '-q', '-f', 'qcow2', '-b', 'good1.qcow2', '-F', 'qcow2', incr]);
    await run('qemu-io', ['-f', 'qcow2', '-c', `write -P 0x22 ${MiB} ${MiB}`, incr]);
    const other = join(images, 'host.qcow2');
    await run('qemu-img', ['create', '-q', '-f', 'qcow2', other, String(SIZE)]);
    await run('qemu-io', ['-f', 'qcow2', '-c', `write -P 0x33 0 ${2 * MiB}`, other]);
    const disk = async (file: string, from?: number, to?: number): Promise<ServedDisk> => ({ diskId: 'disk1', file, virtualSize: SIZE, digests: await digestsOf(file, SIZE, from, to) });
    const good1 = await disk(full);
    const good2 = await disk(incr, MiB, 2 * MiB);
    const host = await disk(other);
    const meta = (restorePointId: unknown, vmId: unknown, d: ServedDisk, over: Record<string, unknown> = {}) => ({
      restorePointId,
      vmId,
      backupId: null,
      type: 'full',
      parentId: null,
      createdAt: at(3 * 3600_000),
      disks: [diskMeta(d)],
      consistency: null,
      consistencyReason: null,
      freezeMs: null,
      configuration: null,
      integrity: 'unverified',
      ...over,
    });
    const points: ServedPoint[] = [
      { meta: meta(ids.good1, 'vm-good', good1, { createdAt: at(2 * 3600_000) }), disks: [good1] },
      // a point from 2099: were it taken, it would be the newest here, and every later genuine point "older"
      { meta: meta(ids.future, 'vm-good', good1, { createdAt: '2099-01-01T00:00:00.000Z' }), disks: [good1] },
      // ids that would put files outside the repository, or are no file name at all
      { meta: meta('rp-evil', `vm-b/${'../'.repeat(24)}${canaryDir.slice(1)}`, good1), disks: [good1] },
      { meta: meta('rp-slash', 'vm-good', { ...good1, diskId: 'disk/../../../x' }), disks: [{ ...good1, diskId: 'disk/../../../x' }] },
      { meta: meta('rp-nul\u0000x', 'vm-good', good1), disks: [good1] },
      { meta: meta(`rp-${'l'.repeat(297)}`, 'vm-good', good1), disks: [good1] },
      { meta: meta('rp-nul-vm', 'vm\u0000nul', good1), disks: [good1] },
      // text the database would refuse: recorded as sent, it would fail the whole run
      { meta: meta('rp-nul-reason', 'vm-good', good1, { consistency: 'crash', consistencyReason: 'frozen\u0000', createdAt: at(100 * 60_000) }), disks: [good1] },
      // an incremental whose parent is nowhere
      { meta: meta('rp-orphan', 'vm-orphan', good2, { type: 'incremental', parentId: 'rp-not-anywhere' }), disks: [good2] },
      // a genuine point whose export names another host to dial (a decoy listens there)
      { meta: meta(ids.host, 'vm-host', host, { createdAt: at(90 * 60_000) }), disks: [host], exportHost: '127.0.0.2' },
      // the genuine point after the future one: it must still land
      { meta: meta(ids.good2, 'vm-good', good2, { type: 'incremental', parentId: ids.good1, createdAt: at(3600_000) }), disks: [good2] },
    ];
    primary = new HostilePrimary(join(work, 'primary'), points);
    await primary.start();
    await target.startHubOnly();
  }, 180_000);

  afterAll(async () => {
    await primary?.close();
    await target.close();
    rmSync(work, { recursive: true, force: true });
  }, 60_000);

  it('refuses each hostile point with its reason, touches nothing outside its repository, and syncs the genuine points', async () => {
    const remote = await target.api('POST', '/api/v1/remotes', { name: 'hostile', url: `ssh://127.0.0.1:${primary.sshPort}`, token: primary.token, fingerprint: primary.fingerprint });
    expect(remote.status).toBe(201);
    const job = await target.api('POST', '/api/v1/sync-jobs', { remoteId: remote.body.remoteId, repositoryId: target.repositoryId });
    expect(job.status).toBe(201);
    const syncJobId = job.body.syncJobId;
    const started = await target.api('POST', `/api/v1/sync-jobs/${syncJobId}/run`);
    expect(started.status).toBe(202);
    let lastRun: any;
    await target.until(async () => {
      lastRun = (await target.api('GET', `/api/v1/sync-jobs/${syncJobId}`)).body.lastRun;
      return lastRun?.runId === started.body.runId && lastRun.status !== 'running';
    }, 120_000, 'the sync run to end');

    expect({ status: lastRun.status, reason: lastRun.reason, synced: lastRun.synced }).toEqual({ status: 'completed-with-warnings', reason: null, synced: [ids.good1, ids.host, ids.good2] });
    expect(lastRun.refused).toEqual([
      { restorePointId: ids.future, vmId: 'vm-good', reason: expect.stringMatching(/^createdAt 2099-01-01T00:00:00.000Z is \d+ minutes ahead of this hub's clock/) },
      { restorePointId: 'rp-evil', vmId: expect.stringMatching(/^"vm-b\/\.\.\/\.\.\//), reason: expect.stringMatching(/^vmId "vm-b\/\.\.\/.* is not a valid identifier/) },
      { restorePointId: 'rp-slash', vmId: 'vm-good', reason: 'diskId "disk/../../../x" is not a valid identifier (1-128 characters of A-Z a-z 0-9 . _ -, starting with a letter or digit, with no \'..\')' },
      { restorePointId: '"rp-nul\\u0000x"', vmId: 'vm-good', reason: expect.stringMatching(/^restorePointId "rp-nul\\u0000x" is not a valid identifier/) },
      { restorePointId: expect.stringMatching(/^"rp-l+"…\(300 characters\)$/), vmId: 'vm-good', reason: expect.stringMatching(/^restorePointId "rp-l+…\(300 characters\)" is not a valid identifier/) },
      { restorePointId: 'rp-nul-vm', vmId: '"vm\\u0000nul"', reason: expect.stringMatching(/^vmId "vm\\u0000nul" is not a valid identifier/) },
      { restorePointId: 'rp-nul-reason', vmId: 'vm-good', reason: 'its consistencyReason is not a line of text' },
      { restorePointId: 'rp-orphan', vmId: 'vm-orphan', reason: 'its parent rp-not-anywhere is neither held here nor listed by the remote hub' },
    ]);
    // each refusal is on the job's stream, as it happened
    const events = (await target.api('GET', `/api/v1/audit/streams/sync-job-${syncJobId}`)).body.events as { type: string; data: any }[];
    expect(events.filter((e) => e.type === 'SyncPointRefused').map((e) => e.data.restorePointId)).toEqual(lastRun.refused.map((r: any) => r.restorePointId));
    expect(events.find((e) => e.type === 'SyncRunCompleted')!.data.refused).toEqual(lastRun.refused);

    // nothing outside the repository: the canary is there, unchanged, and nothing was written beside it
    expect(existsSync(canary)).toBe(true);
    expect(fileSha(canary)).toBe(canarySha);
    expect(readdirSync(canaryDir)).toEqual(['disk1']);
    expect(readdirSync(join(canaryDir, 'disk1'))).toEqual(['rp-evil.qcow2']);
    expect(readdirSync(work).sort()).toEqual(['outside', 'primary', 'primary-images']);
    // and inside it only the genuine points' VMs
    expect(readdirSync(target.repoRoot).filter((f) => !f.startsWith('.')).sort()).toEqual(['vm-good', 'vm-host']);
    // no refused point was even asked for its data
    expect(primary.requests.filter((r) => r.startsWith('POST /api/v1/restore-points/')).sort()).toEqual([ids.good1, ids.good2, ids.host].map((id) => `POST /api/v1/restore-points/${id}/exports`).sort());
    // the host the remote named was never dialled: the disks were read from the pinned remote's address
    expect(primary.decoyConnections).toBe(0);

    // the genuine points landed as the primary serves them, and verify
    for (const id of [ids.good1, ids.good2, ids.host]) {
      const verified = await target.api('POST', `/api/v1/restore-points/${id}/verify`);
      expect({ id, status: verified.status, ok: verified.body.content?.ok }).toEqual({ id, status: 201, ok: true });
    }
    const points = (await target.api('GET', `/api/v1/vms/vm-good/restore-points?repositoryId=${target.repositoryId}`)).body as any[];
    expect(points.map((p) => [p.restorePointId, p.type, p.parentId])).toEqual([
      [ids.good1, 'full', null],
      [ids.good2, 'incremental', ids.good1],
    ]);
    // their immutability window runs from when this hub recorded them, by its clock, not from the primary's createdAt
    const synced = ((await target.api('GET', `/api/v1/audit/streams/chain-vm-good-${target.repositoryId}`)).body.events as { type: string; data: any }[]).filter((e) => e.type === 'RestorePointSynced');
    for (const e of synced) {
      expect(Date.parse(e.data.lockedFrom)).toBeGreaterThanOrEqual(Date.parse(lastRun.startedAt));
      expect(Date.parse(e.data.lockedFrom)).toBeLessThanOrEqual(Date.parse(lastRun.finishedAt));
      expect(Date.parse(e.data.createdAt)).toBeLessThan(Date.parse(lastRun.startedAt) - 30 * 60_000);
    }
    expect(synced).toHaveLength(2);
    const served = primary.points.find((p) => p.meta.restorePointId === ids.good2)!.disks[0].file;
    await run('qemu-img', ['compare', '-q', '-U', served, join(target.repoRoot, points[1].disks[0].file)]);
  }, 180_000);

  it("a job with its own retention refuses the same points again and still completes: its retention reads only the chains of points that passed (a vmId with NUL reaches no query)", async () => {
    const [remote] = (await target.api('GET', '/api/v1/remotes')).body as any[];
    const job = await target.api('POST', '/api/v1/sync-jobs', { remoteId: remote.remoteId, repositoryId: target.repositoryId, retention: { keepLast: 5 } });
    expect(job.status).toBe(201);
    const started = await target.api('POST', `/api/v1/sync-jobs/${job.body.syncJobId}/run`);
    let lastRun: any;
    await target.until(async () => {
      lastRun = (await target.api('GET', `/api/v1/sync-jobs/${job.body.syncJobId}`)).body.lastRun;
      return lastRun?.runId === started.body.runId && lastRun.status !== 'running';
    }, 120_000, 'the sync run to end');
    expect({ status: lastRun.status, reason: lastRun.reason, synced: lastRun.synced, alreadyHeld: lastRun.alreadyHeld, refused: lastRun.refused.length }).toEqual({ status: 'completed-with-warnings', reason: null, synced: [], alreadyHeld: 3, refused: 8 });
    expect(fileSha(canary)).toBe(canarySha);
  }, 180_000);

  it('a primary that names itself with no identifier is not registered, with the reason', async () => {
    const renamed = new HostilePrimary(join(work, 'renamed'), [], 'hub\u0000/../x');
    await renamed.start();
    try {
      const before = (await target.api('GET', '/api/v1/remotes')).body;
      const refused = await target.api('POST', '/api/v1/remotes', { name: 'renamed', url: `ssh://127.0.0.1:${renamed.sshPort}`, token: renamed.token, fingerprint: renamed.fingerprint });
      expect({ status: refused.status, message: refused.body.message }).toEqual({ status: 400, message: 'the remote hub states its instance as "hub\\u0000/../x", not an identifier' });
      expect((await target.api('GET', '/api/v1/remotes')).body).toEqual(before);
    } finally {
      await renamed.close();
    }
  }, 60_000);
});
