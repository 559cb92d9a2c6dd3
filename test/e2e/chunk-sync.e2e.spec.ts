import { execFile } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { createWriteStream, mkdtempSync, readdirSync, readFileSync, rmSync, statSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { Readable } from 'node:stream';
import { pipeline } from 'node:stream/promises';
import { promisify } from 'node:util';
import { MiB, writeToDisk } from '../fixtures/vm/sample-vm';
import { BackupLab, LAB_TOKEN } from '../support/backup-lab';
import { processesMentioning } from '../support/processes';

const run = promisify(execFile);

const filesUnder = (dir: string): string[] => readdirSync(dir, { withFileTypes: true }).flatMap((e) => (e.isDirectory() ? filesUnder(join(dir, e.name)) : [join(dir, e.name)]));

/**
 * Sync into and out of chunk stores, with three real hub processes, each on its own embedded PostgreSQL: a qcow2
 * primary backs a VM up through its agent; an offsite hub pulls its points into a chunks repository encrypted with
 * its own key; a third hub pulls them from the offsite's chunk store into qcow2. Every point reads back byte for byte
 * on every hub, and only what the puller lacks crosses the wire.
 */
describe('sync with chunk stores: into one under its own key, and out of one', () => {
  const keyDir = mkdtempSync(join(tmpdir(), 'sendense-chunk-sync-key-'));
  const keyFile = join(keyDir, 'offsite.key');
  writeFileSync(keyFile, `${randomBytes(32).toString('hex')}\n`, { mode: 0o600 });
  const primary = new BackupLab({ DATABASE_URL: '' });
  const offsite = new BackupLab({ DATABASE_URL: '' }, {}, { layout: 'chunks', encryption: { keyFile } });
  const third = new BackupLab({ DATABASE_URL: '' });
  const MARKER = `SENDENSE-SYNC-MARKER-${randomBytes(8).toString('hex')}`;

  beforeAll(async () => {
    await primary.start([64 * MiB, 96 * MiB], [0, 24 * MiB]);
    await offsite.startHubOnly();
    await third.startHubOnly();
  }, 240_000);
  afterAll(async () => {
    for (const lab of [primary, offsite, third]) await lab.close();
    rmSync(keyDir, { recursive: true, force: true });
  }, 90_000);

  const pointsOf = async (lab: BackupLab) => (await lab.api('GET', `/api/v1/vms/vm1/restore-points?repositoryId=${lab.repositoryId}`)).body as any[];
  const backup = async (type: 'full' | 'auto') => {
    const job = await primary.waitForJob(await primary.backup(type), 120_000);
    if (job.status !== 'completed') throw new Error(`backup ${job.status}: ${JSON.stringify(job)}`);
    return job.restorePointId as string;
  };
  /** A sync job on `puller` from `source`'s repository, as an operator sets one up. */
  async function syncJob(puller: BackupLab, source: BackupLab): Promise<string> {
    const identity = (await source.api('GET', '/api/v1/identity')).body;
    const token = (await source.api('POST', '/api/v1/tokens', { name: `pull-${randomBytes(3).toString('hex')}`, role: 'sync' })).body.token;
    const remote = await puller.api('POST', '/api/v1/remotes', { name: `hub-${randomBytes(3).toString('hex')}`, url: `ssh://127.0.0.1:${source.sshPort}`, token, fingerprint: identity.ssh.hostKeyFingerprint });
    expect(remote.status).toBe(201);
    const job = await puller.api('POST', '/api/v1/sync-jobs', { remoteId: remote.body.remoteId, repositoryId: puller.repositoryId, remoteRepositoryId: source.repositoryId });
    expect(job.status).toBe(201);
    return job.body.syncJobId;
  }
  async function syncRun(puller: BackupLab, syncJobId: string): Promise<any> {
    const started = await puller.api('POST', `/api/v1/sync-jobs/${syncJobId}/run`);
    expect(started.status).toBe(202);
    let job: any;
    await puller.until(async () => {
      job = (await puller.api('GET', `/api/v1/sync-jobs/${syncJobId}`)).body;
      return job.lastRun?.runId === started.body.runId && job.lastRun.status !== 'running';
    }, 120_000, `sync run ${started.body.runId} to end`);
    if (job.lastRun.status !== 'completed') throw new Error(`sync run ${job.lastRun.status}: ${JSON.stringify(job.lastRun)}\n${puller.hub?.output().slice(-3000)}`);
    return job.lastRun;
  }
  /** Every disk of every point of `lab`, downloaded raw: the same bytes as the primary's point, and a verify of each. */
  async function expectSameAsPrimary(lab: BackupLab, ids: string[]): Promise<void> {
    const theirs = await pointsOf(primary);
    const ours = await pointsOf(lab);
    expect(ours.map((p) => [p.restorePointId, p.type, p.parentId])).toEqual(ids.map((id) => theirs.find((p) => p.restorePointId === id)).map((p) => [p.restorePointId, p.type, p.parentId]));
    for (const p of ours) {
      for (const disk of p.disks) {
        const out = join(lab.dir, `${p.restorePointId}-${disk.diskId}.raw`);
        const res = await fetch(`http://127.0.0.1:${lab.apiPort}/api/v1/restore-points/${p.restorePointId}/disks/${disk.diskId}/image?format=raw`, { headers: { Authorization: `Bearer ${LAB_TOKEN}` } });
        expect(res.status).toBe(200);
        await pipeline(Readable.fromWeb(res.body as any), createWriteStream(out));
        const primaryFile = join(primary.repoRoot, theirs.find((x) => x.restorePointId === p.restorePointId).disks.find((d: any) => d.diskId === disk.diskId).file);
        await run('qemu-img', ['compare', '-q', '-U', '-f', 'raw', out, primaryFile]);
        rmSync(out);
      }
      const verified = await lab.api('POST', `/api/v1/restore-points/${p.restorePointId}/verify`);
      expect({ id: p.restorePointId, ok: verified.body.content?.ok, digests: verified.body.content?.digests }).toEqual({ id: p.restorePointId, ok: true, digests: 'all' });
    }
  }

  let intoChunks = '';
  const ids: string[] = [];
  it("pulls a qcow2 primary's chain into a chunk store under the offsite's own key: each point whole there, byte for byte, no plaintext on its disk", async () => {
    ids.push(await backup('full'));
    const markerFile = join(primary.dir, 'marker.txt');
    writeFileSync(markerFile, `${MARKER}\n`.repeat(1024));
    await run('qemu-io', ['-f', 'qcow2', '-c', `write -s ${markerFile} ${30 * MiB} ${statSync(markerFile).size}`, primary.vm.disks[0].path]);
    ids.push(await backup('auto'));
    intoChunks = await syncJob(offsite, primary);
    const first = await syncRun(offsite, intoChunks);
    expect(first.synced).toEqual(ids);
    await expectSameAsPrimary(offsite, ids);
    const here = await pointsOf(offsite);
    for (const p of here) for (const d of p.disks) expect(d.file).toBe(`chunks/points/vm1/${p.restorePointId}/${d.diskId}.idx`);
    // sealed under the offsite's key: the guest's bytes are in no file of its store
    for (const file of filesUnder(join(offsite.repoRoot, 'chunks'))) expect({ file, marker: readFileSync(file).includes(MARKER) }).toEqual({ file, marker: false });
    await offsite.until(async () => (await offsite.api('GET', `/api/v1/repositories/${offsite.repositoryId}`)).body.chunks?.pointDisks === 4, 30_000, 'the offsite store to be measured');
  }, 300_000);

  it("an incremental crosses as its own blocks; a new full on the primary crosses only where it differs from the offsite's newest point", async () => {
    await writeToDisk(primary.vm.disks[1].path, [{ offset: 50 * MiB, length: 2 * MiB, pattern: 0x61 }]);
    ids.push(await backup('auto'));
    const incremental = await syncRun(offsite, intoChunks);
    expect(incremental.synced).toEqual([ids.at(-1)]);
    expect(incremental.bytesReceived).toBeGreaterThanOrEqual(2 * MiB);
    expect(incremental.bytesReceived).toBeLessThan(3 * MiB);

    // a full of the primary is a new chain there; the offsite starts it from its newest point and reads what differs
    await writeToDisk(primary.vm.disks[0].path, [{ offset: 20 * MiB, length: MiB, pattern: 0x62 }]);
    ids.push(await backup('full'));
    const full = await syncRun(offsite, intoChunks);
    expect(full.synced).toEqual([ids.at(-1)]);
    expect(full.bytesReceived).toBeGreaterThanOrEqual(MiB);
    expect(full.bytesReceived).toBeLessThan(2 * MiB);
    await expectSameAsPrimary(offsite, ids);
    expect(processesMentioning(offsite.hubDataDir).filter((p) => p.cmdline.includes('chunk-nbd'))).toEqual([]);
    expect(processesMentioning(primary.hubDataDir).filter((p) => p.cmdline.includes('qemu-nbd'))).toEqual([]);
  }, 300_000);

  it("a third hub pulls the same chain out of the offsite's chunk store into qcow2, an incremental as its own blocks", async () => {
    const outOfChunks = await syncJob(third, offsite);
    const first = await syncRun(third, outOfChunks);
    expect(first.synced).toEqual(ids);
    await expectSameAsPrimary(third, ids);
    // the third hub's chain is qcow2: the primary's second point an overlay on its first
    const here = await pointsOf(third);
    const info = JSON.parse((await run('qemu-img', ['info', '-U', '--output=json', join(third.repoRoot, here[1].disks[0].file)])).stdout);
    expect(info['backing-filename']).toBe(here[0].disks[0].file.split('/').pop());

    await writeToDisk(primary.vm.disks[1].path, [{ offset: 60 * MiB, length: MiB, pattern: 0x63 }]);
    ids.push(await backup('auto'));
    expect((await syncRun(offsite, intoChunks)).synced).toEqual([ids.at(-1)]);
    const next = await syncRun(third, outOfChunks);
    expect(next.synced).toEqual([ids.at(-1)]);
    expect(next.bytesReceived).toBeGreaterThanOrEqual(MiB);
    expect(next.bytesReceived).toBeLessThan(2 * MiB);
    await expectSameAsPrimary(third, ids);
    expect(processesMentioning(offsite.hubDataDir).filter((p) => p.cmdline.includes('chunk-nbd'))).toEqual([]);
    expect((await offsite.api('GET', '/api/v1/nbd/ports')).body).toEqual([]);
  }, 300_000);
});
