import { execFile } from 'node:child_process';
import { createWriteStream, existsSync, mkdirSync, readdirSync } from 'node:fs';
import { join } from 'node:path';
import { Readable } from 'node:stream';
import { pipeline } from 'node:stream/promises';
import { promisify } from 'node:util';
import { MiB, writeToDisk } from '../fixtures/vm/sample-vm';
import { BackupLab, LAB_NBD_PORTS, LAB_TOKEN } from '../support/backup-lab';
import { processesMentioning, spawnSendense } from '../support/processes';
import { startFlippingRelay } from '../fixtures/tunnel/flipping-relay';

const run = promisify(execFile);

/** The point's own bytes in its file: what qemu-img map says this file (depth 0) holds, data and zeroes. */
async function ownBytes(file: string): Promise<{ data: number; zero: number }> {
  const map = JSON.parse((await run('qemu-img', ['map', '-U', '--output=json', file])).stdout) as { length: number; depth: number; data: boolean; zero: boolean }[];
  const own = map.filter((e) => e.depth === 0 && (e.data || e.zero));
  return { data: own.filter((e) => e.data).reduce((a, e) => a + e.length, 0), zero: own.filter((e) => !e.data).reduce((a, e) => a + e.length, 0) };
}

/**
 * Two real hub processes, each on its own embedded PostgreSQL: the primary backs a VM up through its agent, the
 * second pulls the restore points over SSH (host key pinned, a sync token as the password) and NBD with TLS.
 */
describe('hub-to-hub sync: a second hub pulls the restore points it does not hold', () => {
  // its NBD exports on loopback only, so that a relay on another loopback address can stand between the hubs
  const primary = new BackupLab({ DATABASE_URL: '', SENDENSE_NBD_BIND: '127.0.0.1' });
  const target = new BackupLab({ DATABASE_URL: '' });
  let syncToken = '';
  let fingerprint = '';
  let remoteId = '';
  let syncJobId = '';

  beforeAll(async () => {
    await primary.start([64 * MiB, 96 * MiB], [0, 24 * MiB]);
    await target.startHubOnly();
  }, 180_000);
  afterAll(async () => {
    await primary.close();
    await target.close();
  }, 60_000);

  const primaryPoints = async () => (await primary.api('GET', `/api/v1/vms/vm1/restore-points?repositoryId=${primary.repositoryId}`)).body as any[];
  const targetPoints = async () => (await target.api('GET', `/api/v1/vms/vm1/restore-points?repositoryId=${target.repositoryId}`)).body as any[];
  const backup = async (type: 'full' | 'auto') => {
    const job = await primary.waitForJob(await primary.backup(type));
    if (job.status !== 'completed') throw new Error(`backup ${job.status}: ${JSON.stringify(job)}`);
    return job.restorePointId as string;
  };
  const change = (n: number) => writeToDisk(primary.vm.disks[n % 2].path, [{ offset: (10 + n) * MiB, length: 2 * MiB + 4096, pattern: 0x20 + n }, { offset: 40 * MiB + n * 65536, length: 65536, zero: true }]);
  /** Runs the job and waits for the run to end; the run as the job's lastRun shows it. */
  const syncRun = async (expected: 'completed' | 'failed' = 'completed') => {
    const started = await target.api('POST', `/api/v1/sync-jobs/${syncJobId}/run`);
    expect(started.status).toBe(202);
    let job: any;
    await target.until(async () => {
      job = (await target.api('GET', `/api/v1/sync-jobs/${syncJobId}`)).body;
      return job.lastRun?.runId === started.body.runId && job.lastRun.status !== 'running';
    }, 120_000, `sync run ${started.body.runId} to end`);
    if (job.lastRun.status !== expected) throw new Error(`sync run ${job.lastRun.status}: ${JSON.stringify(job.lastRun)}\n${target.hub?.output().slice(-3000)}`);
    return job.lastRun;
  };
  /** Each disk of each point the same on both hubs, read through each hub's own chain. */
  const expectSameAsPrimary = async (ids: string[]) => {
    const theirs = await primaryPoints();
    const ours = await targetPoints();
    expect(ours.map((p) => p.restorePointId)).toEqual(ids);
    for (const id of ids) {
      const p = theirs.find((x) => x.restorePointId === id);
      const t = ours.find((x) => x.restorePointId === id);
      expect({ type: t.type, parentId: t.parentId, createdAt: t.createdAt, disks: t.disks.map((d: any) => d.diskId) }).toEqual({ type: p.type, parentId: p.parentId, createdAt: p.createdAt, disks: p.disks.map((d: any) => d.diskId) });
      for (const disk of p.disks) {
        const mine = t.disks.find((d: any) => d.diskId === disk.diskId);
        await run('qemu-img', ['compare', '-q', '-U', join(primary.repoRoot, disk.file), join(target.repoRoot, mine.file)]);
      }
    }
  };

  it('registers the primary only as it says it is: pinned host key, a sync token, its identity', async () => {
    const identity = (await primary.api('GET', '/api/v1/identity')).body;
    expect(identity).toEqual({ hubInstance: expect.any(String), ssh: { port: primary.sshPort, hostKeyFingerprint: expect.stringMatching(/^SHA256:[A-Za-z0-9+/]{43}$/) }, api: { tls: false, certificateFingerprint: null } });
    fingerprint = identity.ssh.hostKeyFingerprint;
    const issued = await primary.api('POST', '/api/v1/tokens', { name: 'offsite', role: 'sync' });
    expect(issued.status).toBe(201);
    syncToken = issued.body.token;
    const operator = (await primary.api('POST', '/api/v1/tokens', { name: 'someone', role: 'operator' })).body.token;
    const url = `ssh://127.0.0.1:${primary.sshPort}`;
    const wrongKey = `SHA256:${'A'.repeat(43)}`;

    const refusals = [
      [{ name: 'primary', url, token: syncToken, fingerprint: wrongKey }, `does not match the pinned ${wrongKey}`],
      [{ name: 'primary', url, token: operator, fingerprint }, 'rejected the password'],
      [{ name: 'primary', url, token: 'not-a-token-of-that-hub', fingerprint }, 'rejected the password'],
      [{ name: 'primary', url: `http://127.0.0.1:${primary.apiPort}`, token: syncToken, fingerprint }, 'url must be ssh://HOST[:PORT]'],
      [{ name: 'Primary!', url, token: syncToken, fingerprint }, 'name must be'],
      [{ name: 'primary', url, token: syncToken, fingerprint: 'SHA256:short' }, 'fingerprint must be'],
    ] as const;
    for (const [body, message] of refusals) {
      const res = await target.api('POST', '/api/v1/remotes', body);
      expect({ status: res.status, message: JSON.stringify(res.body.message) }).toEqual({ status: 400, message: expect.stringContaining(message) });
    }
    expect((await target.api('GET', '/api/v1/remotes')).body).toEqual([]);

    const registered = await target.api('POST', '/api/v1/remotes', { name: 'primary', url, token: syncToken, fingerprint });
    expect(registered.status).toBe(201);
    expect(registered.body).toEqual({ remoteId: expect.any(String), name: 'primary', url, host: '127.0.0.1', port: primary.sshPort, fingerprint, hubInstance: identity.hubInstance });
    remoteId = registered.body.remoteId;
    expect((await target.api('POST', '/api/v1/remotes', { name: 'primary', url, token: syncToken, fingerprint })).status).toBe(409);
    // the token is kept beside the hub's data, not in its events
    const events = (await target.api('GET', `/api/v1/audit/streams/remote-${remoteId}`)).body.events;
    expect(JSON.stringify(events)).not.toContain(syncToken);
  });

  it("the sync token reads restore points on the primary and nothing else: no deletes, no backups, no settings", async () => {
    const as = (method: string, path: string, body?: unknown) =>
      fetch(`http://127.0.0.1:${primary.apiPort}${path}`, { method, headers: { Authorization: `Bearer ${syncToken}`, 'Content-Type': 'application/json' }, body: body === undefined ? undefined : JSON.stringify(body) }).then((r) => r.status);
    const id = await backup('full');
    expect(await as('GET', '/api/v1/sync/restore-points')).toBe(200);
    expect(await as('DELETE', `/api/v1/restore-points/${id}`)).toBe(403);
    expect(await as('POST', '/api/v1/backups', { vmId: 'vm1', repositoryId: primary.repositoryId, type: 'full' })).toBe(403);
    expect(await as('GET', '/api/v1/repositories')).toBe(403);
    expect(await as('GET', '/api/v1/tokens')).toBe(403);
    expect(await as('GET', '/api/v1/policies')).toBe(403);
    expect((await primaryPoints()).map((p) => p.restorePointId)).toContain(id);
  });

  it('three points synced as the same chain, byte for byte, verified on the second hub; a fourth sends only itself', async () => {
    const ids = (await primaryPoints()).map((p) => p.restorePointId);
    for (let n = 1; ids.length < 3; n++) {
      await change(n);
      ids.push(await backup('auto'));
    }
    const created = await target.api('POST', '/api/v1/sync-jobs', { remoteId, repositoryId: target.repositoryId });
    expect(created.status).toBe(201);
    syncJobId = created.body.syncJobId;
    for (const bad of [{ remoteId: 'nope', repositoryId: target.repositoryId }, { remoteId, repositoryId: target.repositoryId, schedule: '61 * * * *' }, { remoteId, repositoryId: target.repositoryId, schedule: '0 3 * * *', timeZone: 'Mars/Olympus' }, { remoteId, repositoryId: target.repositoryId, vms: [] }]) {
      expect((await target.api('POST', '/api/v1/sync-jobs', bad)).status).toBe(400);
    }
    expect((await target.api('POST', '/api/v1/sync-jobs', { remoteId: '6f1d8a4e-2b9c-4c1e-9a55-0d6c1f3e7b21', repositoryId: target.repositoryId })).status).toBe(404);

    const first = await syncRun();
    expect({ synced: first.synced, alreadyHeld: first.alreadyHeld }).toEqual({ synced: ids, alreadyHeld: 0 });
    await expectSameAsPrimary(ids);
    const synced = await targetPoints();
    expect(synced.map((p) => p.type)).toEqual(['full', 'incremental', 'incremental']);
    for (const p of synced) expect(p.source).toEqual({ remoteId, syncJobId, runId: first.runId, sourceRepositoryId: primary.repositoryId, sourceBackupId: expect.any(String), bytesReceived: expect.any(Number) });
    // an incremental here is an overlay on the synced parent, as on the primary
    const info = JSON.parse((await run('qemu-img', ['info', '-U', '--output=json', join(target.repoRoot, synced[2].disks[0].file)])).stdout);
    expect(info['backing-filename']).toBe(synced[1].disks[0].file.split('/').pop());
    for (const p of synced) {
      const verified = await target.api('POST', `/api/v1/restore-points/${p.restorePointId}/verify`);
      expect({ id: p.restorePointId, ok: verified.body.content.ok, digests: verified.body.content.digests }).toEqual({ id: p.restorePointId, ok: true, digests: 'all' });
    }
    const story = (await target.api('GET', `/api/v1/audit/streams/chain-vm1-${target.repositoryId}?limit=100`)).body.events as { type: string; metadata: any }[];
    expect(story.filter((e) => e.type === 'RestorePointSynced')).toHaveLength(3);

    // a fourth point: only it crosses, about the size of its own file's clusters
    await change(7);
    const fourth = await backup('auto');
    const again = await syncRun();
    expect({ synced: again.synced, alreadyHeld: again.alreadyHeld }).toEqual({ synced: [fourth], alreadyHeld: 3 });
    await expectSameAsPrimary([...ids, fourth]);
    const point = (await primaryPoints()).find((p) => p.restorePointId === fourth);
    let own = 0;
    for (const d of point.disks) {
      const b = await ownBytes(join(primary.repoRoot, d.file));
      own += b.data;
    }
    // what was read is the point's own data clusters; zeroes are asked for, not sent; digests and configuration add a little
    expect(again.bytesReceived).toBeGreaterThanOrEqual(own);
    expect(again.bytesReceived).toBeLessThan(own + 256 * 1024);
    expect(again.bytesReceived).toBeLessThan(first.bytesReceived / 4);
    expect(await primary.leftovers()).toEqual({ qemuNbd: [], leases: 0, strayFiles: [] });
    expect(await target.leftovers(['vm1'])).toEqual({ qemuNbd: [], leases: 0, strayFiles: [] });
    expect((await primary.api('GET', `/api/v1/restore-points/${fourth}/exports`)).body.every((e: { status: string }) => e.status === 'closed')).toBe(true);
  }, 300_000);

  it('with the primary stopped, a file and a whole disk come back from the second hub', async () => {
    await primary.stop(primary.agent);
    await primary.stop(primary.hub);
    const newest = (await targetPoints()).at(-1)!;
    const mount = await target.api('POST', '/api/v1/restore/mounts', { restorePointId: newest.restorePointId, diskId: 'disk0' });
    expect(mount.status).toBe(201);
    const volume = mount.body.volumes[0].id;
    const file = await fetch(`http://127.0.0.1:${target.apiPort}/api/v1/restore/mounts/${mount.body.mountId}/file?volume=${volume}&path=/etc/hostname`, { headers: { Authorization: `Bearer ${LAB_TOKEN}` } });
    expect(file.status).toBe(200);
    expect(await file.text()).toBe('vm1-disk0\n');
    expect((await target.api('DELETE', `/api/v1/restore/mounts/${mount.body.mountId}`)).status).toBe(200);

    const image = await fetch(`http://127.0.0.1:${target.apiPort}/api/v1/restore-points/${newest.restorePointId}/disks/disk1/image?format=raw`, { headers: { Authorization: `Bearer ${LAB_TOKEN}` } });
    expect(image.status).toBe(200);
    const out = join(target.dir, 'disk1.raw');
    await pipeline(Readable.fromWeb(image.body as any), createWriteStream(out));
    const disk1 = newest.disks.find((d: any) => d.diskId === 'disk1');
    await run('qemu-img', ['compare', '-q', '-U', '-f', 'raw', out, join(target.repoRoot, disk1.file)]);
    await primary.startHub();
    await primary.startAgent();
  }, 180_000);

  it('a sync cut by a SIGKILL of either hub mid-transfer resumes at the next run; no partial point is ever listed', async () => {
    const jobOf = async (id: string) => (await target.api('GET', `/api/v1/sync-jobs/${id}`)).body;
    const heldBefore = (await targetPoints()).map((p) => p.restorePointId);

    // the second hub killed while it writes a point: a job limited to 4 MiB/s copies 30 MiB for some 7 s; a small
    // point before it is copied first, and stays synced (and said to be) when the run is cut
    await change(30);
    const small = await backup('auto');
    await writeToDisk(primary.vm.disks[1].path, [{ offset: 60 * MiB, length: 30 * MiB, pattern: 0x77 }]);
    const big = await backup('auto');
    const limited = await target.api('POST', '/api/v1/sync-jobs', { remoteId, repositoryId: target.repositoryId, maxBytesPerSecond: 4 * MiB });
    expect({ status: limited.status, maxBytesPerSecond: limited.body.maxBytesPerSecond }).toEqual({ status: 201, maxBytesPerSecond: 4 * MiB });
    const slow = limited.body.syncJobId;
    expect((await target.api('POST', `/api/v1/sync-jobs/${slow}/run`)).status).toBe(202);
    const writer = () => processesMentioning(target.repoRoot).filter((p) => p.cmdline.includes('qemu-nbd') && p.cmdline.includes(`${big}.qcow2`) && p.cmdline.includes('disk1'));
    await target.until(async () => writer().length > 0, 60_000, 'the second hub to write the big point');
    await new Promise((r) => setTimeout(r, 1500));
    // progress you can watch: the copy reports every second, part of the point's disk done
    await target.until(async () => ((await jobOf(slow)).lastRun.progress?.bytesDone ?? 0) > 0, 10_000, 'a progress report');
    const running = (await jobOf(slow)).lastRun;
    expect(running).toMatchObject({ status: 'running', restorePointId: big, progress: { restorePointId: big, diskId: 'disk1' } });
    expect(running.progress.bytesDone).toBeLessThan(running.progress.bytesPlanned);
    await target.stop(target.hub, 'SIGKILL');
    // what the killed hub left: the qemu-nbd it wrote through, and a partial file no restore point names
    expect(writer()).toHaveLength(1);
    expect(existsSync(join(target.repoRoot, 'vm1', 'disk1', `${big}.qcow2`))).toBe(true);
    await target.startHub();
    // the restarted hub stopped that qemu-nbd and removed the partial file before anything resumed (a job run by hand
    // might never run again), and its exports' work area is empty
    expect(writer()).toEqual([]);
    expect(existsSync(join(target.repoRoot, 'vm1', 'disk1', `${big}.qcow2`))).toBe(false);
    expect(readdirSync(join(target.hubDataDir, 'point-exports'))).toEqual([]);
    const cut = (await jobOf(slow)).lastRun;
    expect(cut).toMatchObject({ status: 'failed', reason: 'the hub stopped during the run', restorePointId: big, synced: [small] });
    expect(cut.bytesReceived).toBeGreaterThan(2 * MiB);
    expect((await targetPoints()).map((p) => p.restorePointId)).toEqual([...heldBefore, small]);
    syncJobId = slow;
    const resumed = await syncRun();
    expect({ synced: resumed.synced, alreadyHeld: resumed.alreadyHeld }).toEqual({ synced: [big], alreadyHeld: heldBefore.length + 1 });
    expect(writer()).toEqual([]);

    // the primary killed while it serves a point: once the copy began (the export served and the point is recorded as
    // begun), the export is paused (SIGSTOP), so the copy is in flight when the hub dies. Enough data for several seconds at the limit.
    await writeToDisk(primary.vm.disks[1].path, [{ offset: 30 * MiB, length: 24 * MiB, pattern: 0x66 }]);
    const next = await backup('auto');
    const started = await target.api('POST', `/api/v1/sync-jobs/${slow}/run`);
    expect(started.status).toBe(202);
    await target.until(async () => (await jobOf(slow)).lastRun.restorePointId === next, 30_000, 'the run to begin the point');
    const paused = processesMentioning(primary.repoRoot).filter((x) => x.cmdline.includes('qemu-nbd') && x.cmdline.includes(next)).map((p) => p.pid);
    expect(paused).toHaveLength(2);
    for (const pid of paused) process.kill(pid, 'SIGSTOP');
    expect((await jobOf(slow)).lastRun.status).toBe('running');
    await primary.stop(primary.agent);
    await primary.stop(primary.hub, 'SIGKILL');
    for (const pid of paused) process.kill(pid, 'SIGCONT');
    await target.until(async () => (await jobOf(slow)).lastRun.status === 'failed', 120_000, 'the run to fail with the primary gone');
    expect((await targetPoints()).map((p) => p.restorePointId)).not.toContain(next);
    await primary.startHub();
    await primary.startAgent();
    const after = await syncRun();
    expect(after.synced).toEqual([next]);

    await expectSameAsPrimary((await primaryPoints()).map((p) => p.restorePointId));
    // nothing of the cut copies stayed: every file in the repository belongs to a listed point, no qemu-nbd runs on either side
    expect(await target.leftovers(['vm1'])).toEqual({ qemuNbd: [], leases: 0, strayFiles: [] });
    expect(processesMentioning(target.repoRoot).filter((p) => p.cmdline.includes('qemu-nbd'))).toEqual([]);
    expect(processesMentioning(primary.repoRoot).filter((p) => p.cmdline.includes('qemu-nbd'))).toEqual([]);
  }, 420_000);

  it('the CLI lists the remote and the jobs, and runs a sync showing what it copied', async () => {
    const cli = async (args: string[]) => {
      const proc = spawnSendense(args, { SENDENSE_HUB: `http://127.0.0.1:${target.apiPort}`, SENDENSE_TOKEN: LAB_TOKEN });
      return { code: (await proc.exited).code, out: proc.output() };
    };
    expect(await cli(['remote', 'list'])).toEqual({ code: 0, out: `${remoteId}  primary  ssh://127.0.0.1:${primary.sshPort}  ${fingerprint}\n` });
    const listed = await cli(['sync', 'list']);
    expect(listed.code).toBe(0);
    expect(listed.out).toContain(`${syncJobId}  remote ${remoteId} -> repository ${target.repositoryId}  completed `);
    await change(17);
    const fresh = await backup('auto');
    const ran = await cli(['sync', 'run', syncJobId]);
    expect(ran.code).toBe(0);
    expect(ran.out).toMatch(/^sync run [0-9a-f-]{36}\n/);
    expect(ran.out).toMatch(/completed \S+: 1 point\(s\) copied, \d+ already here, [\d.]+ \S+ received\n$/);
    expect((await targetPoints()).map((p) => p.restorePointId)).toContain(fresh);
    const bad = await cli(['sync', 'add', '--remote', remoteId, '--repository', target.repositoryId, '--max-rate', 'fast']);
    expect(bad.code).toBe(1);
    expect(bad.out).toContain('maxBytesPerSecond must be a whole number');
  }, 120_000);

  it("a third hub pulling the same primary keeps its own retention; a hub holds a point once; a point the primary prunes stays where it was synced", async () => {
    // a second repository on the second hub: the points it holds already are not copied into it again
    mkdirSync(join(target.dir, 'repo2'));
    const repo2 = (await target.api('POST', '/api/v1/repositories', { name: 'other', kind: 'local', path: join(target.dir, 'repo2') })).body.repositoryId;
    // ...by a job that runs by itself, once: its schedule names one second, three from now (UTC)
    const at = new Date(Date.now() + 3000);
    const once = `${at.getUTCSeconds()} ${at.getUTCMinutes()} ${at.getUTCHours()} ${at.getUTCDate()} ${at.getUTCMonth() + 1} *`;
    const twice = (await target.api('POST', '/api/v1/sync-jobs', { remoteId, repositoryId: repo2, schedule: once })).body.syncJobId;
    let scheduled: any;
    await target.until(async () => {
      scheduled = (await target.api('GET', `/api/v1/sync-jobs/${twice}`)).body.lastRun;
      return scheduled?.status === 'completed';
    }, 30_000, 'a scheduled run');
    expect({ trigger: scheduled.trigger, synced: scheduled.synced, alreadyHeld: scheduled.alreadyHeld }).toEqual({ trigger: 'schedule', synced: [], alreadyHeld: (await primaryPoints()).length });

    const offsite = new BackupLab({ DATABASE_URL: '' });
    let newer = '';
    try {
      await offsite.startHubOnly();
      const token = (await primary.api('POST', '/api/v1/tokens', { name: 'offsite-2', role: 'sync' })).body.token;
      const remote = (await offsite.api('POST', '/api/v1/remotes', { name: 'primary', url: `ssh://127.0.0.1:${primary.sshPort}`, token, fingerprint })).body.remoteId;
      const bad = await offsite.api('POST', '/api/v1/sync-jobs', { remoteId: remote, repositoryId: offsite.repositoryId, retention: { keepLast: 0 } });
      expect({ status: bad.status, message: bad.body.message }).toEqual({ status: 400, message: 'retention keeps nothing: at least one rule must keep 1 or more' });
      const created = await offsite.api('POST', '/api/v1/sync-jobs', { remoteId: remote, repositoryId: offsite.repositoryId, retention: { keepLast: 2 } });
      expect(created.body.retention).toEqual({ keepLast: 2 });
      const job = created.body.syncJobId;
      const run2 = async () => {
        const { runId } = (await offsite.api('POST', `/api/v1/sync-jobs/${job}/run`)).body;
        let last: any;
        await offsite.until(async () => {
          last = (await offsite.api('GET', `/api/v1/sync-jobs/${job}`)).body.lastRun;
          return last?.runId === runId && last.status !== 'running';
        }, 120_000, 'the offsite run');
        expect({ status: last.status, reason: last.reason }).toEqual({ status: 'completed', reason: null });
        return last;
      };
      const offsitePoints = async () => (await offsite.api('GET', `/api/v1/vms/vm1/restore-points?repositoryId=${offsite.repositoryId}`)).body as any[];
      const remoteIds = (await primaryPoints()).map((p) => p.restorePointId);
      const first = await run2();
      expect(first.synced).toEqual(remoteIds);
      expect(first.pruned).toEqual(remoteIds.slice(0, -2));
      const kept = await offsitePoints();
      expect(kept.map((p) => p.restorePointId)).toEqual(remoteIds.slice(-2));
      for (const p of kept) {
        const theirs = (await primaryPoints()).find((x) => x.restorePointId === p.restorePointId);
        for (const d of p.disks) await run('qemu-img', ['compare', '-q', '-U', join(primary.repoRoot, theirs.disks.find((x: any) => x.diskId === d.diskId).file), join(offsite.repoRoot, d.file)]);
      }
      // what retention took there is not pulled again
      const second = await run2();
      expect({ synced: second.synced, alreadyHeld: second.alreadyHeld, pruned: second.pruned }).toEqual({ synced: [], alreadyHeld: 2, pruned: [] });
      await change(19);
      newer = await backup('auto');
      const third = await run2();
      expect({ synced: third.synced, pruned: third.pruned }).toEqual({ synced: [newer], pruned: [remoteIds.at(-2)] });
      expect((await offsitePoints()).map((p) => p.restorePointId)).toEqual([remoteIds.at(-1), newer]);
    } finally {
      await offsite.close();
    }

    // the primary prunes its oldest point; the second hub's copy of it stays
    const oldest = (await primaryPoints())[0].restorePointId;
    expect((await primary.api('DELETE', `/api/v1/restore-points/${oldest}`)).status).toBe(200);
    await change(20);
    const newest = await backup('auto');
    syncJobId = (await target.api('GET', '/api/v1/sync-jobs')).body[0].syncJobId;
    const after = await syncRun();
    expect(after.synced).toEqual([newer, newest]);
    expect((await targetPoints()).map((p) => p.restorePointId)).toContain(oldest);
    expect((await target.api('POST', `/api/v1/restore-points/${oldest}/verify`)).body.content.ok).toBe(true);
  }, 240_000);

  it('a byte flipped on the wire between the hubs fails the sync of that point; nothing is recorded, and the next run copies it', async () => {
    // every path between the hubs is authenticated encryption (SSH, TLS 1.3 with AES-GCM): a flipped bit fails the
    // record it lands in, so it never reaches a block to be compared; the run fails naming the point
    const nbdPorts = Array.from({ length: LAB_NBD_PORTS.last - LAB_NBD_PORTS.first + 1 }, (_, i) => LAB_NBD_PORTS.first + i);
    const relay = await startFlippingRelay('127.0.0.3', [primary.sshPort, ...nbdPorts], new Set(nbdPorts), 200_000);
    let fresh = '';
    try {
      const relayed = await target.api('POST', '/api/v1/remotes', { name: 'primary-relayed', url: `ssh://127.0.0.3:${primary.sshPort}`, token: syncToken, fingerprint });
      expect(relayed.status).toBe(201);
      const job = (await target.api('POST', '/api/v1/sync-jobs', { remoteId: relayed.body.remoteId, repositoryId: target.repositoryId })).body.syncJobId;
      await change(23);
      fresh = await backup('auto');
      const before = (await targetPoints()).map((p) => p.restorePointId);
      syncJobId = job;
      const failed = await syncRun('failed');
      expect(relay.flipped()).toBe(true);
      expect(failed.restorePointId).toBe(fresh);
      expect(failed.reason).toMatch(new RegExp(`^copying restore point ${fresh} failed: .*(bad record mac|decrypt|TLS|closed)`, 'i'));
      expect((await targetPoints()).map((p) => p.restorePointId)).toEqual(before);
      expect(await target.leftovers(['vm1'])).toEqual({ qemuNbd: [], leases: 0, strayFiles: [] });
    } finally {
      await relay.close();
    }
    syncJobId = (await target.api('GET', '/api/v1/sync-jobs')).body[0].syncJobId;
    const direct = await syncRun();
    expect(direct.synced).toEqual([fresh]);
    const theirs = (await primaryPoints()).find((p) => p.restorePointId === fresh);
    const ours = (await targetPoints()).find((p) => p.restorePointId === fresh);
    for (const d of theirs.disks) await run('qemu-img', ['compare', '-q', '-U', join(primary.repoRoot, d.file), join(target.repoRoot, ours.disks.find((x: any) => x.diskId === d.diskId).file)]);
  }, 180_000);

  it("a remote's token revoked there fails the runs saying so; another sync token it issued, checked as at registration, puts the job back to work", async () => {
    const tokens = (await primary.api('GET', '/api/v1/tokens')).body as { tokenId: string; name: string }[];
    expect((await primary.api('DELETE', `/api/v1/tokens/${tokens.find((t) => t.name === 'offsite')!.tokenId}`)).status).toBe(204);
    await change(24);
    const next = await backup('auto');
    const refused = await syncRun('failed');
    expect(refused.reason).toContain('rejected the password');

    const replace = (id: string, token: unknown) => target.api('PUT', `/api/v1/remotes/${id}/token`, { token });
    const operator = (await primary.api('POST', '/api/v1/tokens', { name: 'not-for-sync', role: 'operator' })).body.token;
    const fresh = (await primary.api('POST', '/api/v1/tokens', { name: 'offsite-2', role: 'sync' })).body.token;
    const refusals: [string, unknown, number, string][] = [
      [remoteId, 'short', 400, 'token must be 16-512 printable characters'],
      ['not-a-uuid', fresh, 400, 'remote id must be a uuid'],
      ['6f1d8a4e-2b9c-4c1e-9a55-0d6c1f3e7b21', fresh, 404, 'remote 6f1d8a4e-2b9c-4c1e-9a55-0d6c1f3e7b21 does not exist'],
      [remoteId, syncToken, 400, 'rejected the password'],
      // only a sync token logs in to a hub's sync tunnel at all
      [remoteId, operator, 400, 'rejected the password'],
    ];
    for (const [id, token, status, message] of refusals) {
      const res = await replace(id, token);
      expect({ status: res.status, message: JSON.stringify(res.body.message) }).toEqual({ status, message: expect.stringContaining(message) });
    }
    // nothing refused changed the token: the job still fails as before
    expect((await syncRun('failed')).reason).toContain('rejected the password');
    const replaced = await replace(remoteId, fresh);
    expect(replaced.status).toBe(200);
    expect(replaced.body).toMatchObject({ remoteId, name: 'primary', fingerprint });
    const story = (await target.api('GET', `/api/v1/audit/streams/remote-${remoteId}?limit=10`)).body.events as { type: string }[];
    expect(story.map((e) => e.type)).toEqual(['RemoteRegistered', 'RemoteTokenReplaced']);
    expect((await syncRun()).synced).toEqual([next]);
  }, 180_000);

  it('a block that does not match its digest fails the sync of that point, naming the block; nothing is recorded', async () => {
    await change(21);
    const damaged = await backup('auto');
    const point = (await primaryPoints()).find((p) => p.restorePointId === damaged);
    const disk = point.disks.find((d: any) => d.diskId === 'disk1');
    // flip one byte of the point's own data on the primary after its digest was recorded: what the target receives is not what was backed up
    const offset = (10 + 21) * MiB + 1000;
    await run('qemu-io', ['-f', 'qcow2', '-c', `write -P 0x99 ${offset} 1`, join(primary.repoRoot, disk.file)]);
    const before = (await targetPoints()).map((p) => p.restorePointId);
    const failed = await syncRun('failed');
    expect(failed.restorePointId).toBe(damaged);
    expect(failed.reason).toMatch(new RegExp(`disk disk1 of restore point ${damaged} did not arrive intact: the block at offset ${Math.floor(offset / 65536) * 65536} `));
    expect((await targetPoints()).map((p) => p.restorePointId)).toEqual(before);
    expect(await target.leftovers(['vm1'])).toEqual({ qemuNbd: [], leases: 0, strayFiles: [] });
    expect(existsSync(join(target.repoRoot, 'vm1', 'disk1', `${damaged}.qcow2`))).toBe(false);
    expect(readdirSync(join(target.repoRoot, 'vm1', 'manifests')).filter((f) => f.startsWith(damaged))).toEqual([]);
  }, 180_000);
});
