import { execFile } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { createWriteStream, existsSync, mkdirSync, readFileSync, readdirSync, statSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { Readable } from 'node:stream';
import { pipeline } from 'node:stream/promises';
import { promisify } from 'node:util';
import { MiB } from '../fixtures/vm/sample-vm';
import { EXTENTS_MEDIA_TYPE, ZSTD_CODEC } from '../../src/disk-images/image-extents';
import { BackupLab, LAB_TOKEN } from '../support/backup-lab';
import { processesMentioning, spawnSendense } from '../support/processes';

const run = promisify(execFile);

function filesUnder(dir: string): string[] {
  return readdirSync(dir, { withFileTypes: true }).flatMap((e) => (e.isDirectory() ? filesUnder(join(dir, e.name)) : [join(dir, e.name)]));
}

const bytesUnder = (dir: string) => filesUnder(dir).reduce((sum, f) => sum + statSync(f).size, 0);

/**
 * A repository of layout chunks (docs/design/storage.md) with a real hub and agent: the agent's stream ends in the
 * chunk store's own NBD server (no qemu-nbd, no qcow2), every block is stored once per repository, compressed and
 * sealed with the repository's key, and the points are read back by downloads, file-level restore and verify.
 */
describe('chunks repository (real hub + agent, encrypted chunk store on real files)', () => {
  const lab = new BackupLab({ DATABASE_URL: '' });
  const NOTES = 'disk 0 of vm1\n';
  const MARKER = `SENDENSE-PLAINTEXT-MARKER-${randomBytes(8).toString('hex')}`;
  let keyFile = '';
  let repositoryId = '';
  const root = () => join(lab.dir, 'dedup');
  const store = () => join(root(), 'chunks');

  beforeAll(async () => {
    await lab.start([64 * MiB, 96 * MiB], [0, 8 * MiB]);
    keyFile = join(lab.dir, 'dedup.key');
    writeFileSync(keyFile, `${randomBytes(32).toString('hex')}\n`, { mode: 0o600 });
  }, 180_000);
  afterAll(() => lab.close(), 60_000);

  const points = async () => (await lab.api('GET', `/api/v1/vms/vm1/restore-points?repositoryId=${repositoryId}`)).body as any[];
  const backup = async (type: 'full' | 'auto') => {
    const res = await lab.api('POST', '/api/v1/backups', { vmId: 'vm1', repositoryId, type });
    expect(res.status).toBe(202);
    const job = await lab.waitForJob(res.body.jobId, 120_000);
    if (job.status !== 'completed') throw new Error(`backup ${job.status}: ${JSON.stringify(job)}\n${lab.hub?.output().slice(-3000)}`);
    return job.restorePointId as string;
  };
  const download = async (restorePointId: string, diskId: string, out: string) => {
    const res = await fetch(`http://127.0.0.1:${lab.apiPort}/api/v1/restore-points/${restorePointId}/disks/${diskId}/image?format=raw`, { headers: { Authorization: `Bearer ${LAB_TOKEN}` } });
    expect(res.status).toBe(200);
    await pipeline(Readable.fromWeb(res.body as any), createWriteStream(out));
  };
  const expectNoPlaintext = () => {
    const files = filesUnder(store());
    expect(files.some((f) => f.endsWith('.pack'))).toBe(true);
    for (const file of files) {
      const bytes = readFileSync(file);
      expect({ file, marker: bytes.includes(MARKER), notes: bytes.includes(NOTES.repeat(4)) }).toEqual({ file, marker: false, notes: false });
    }
  };

  it('refuses a layout it does not know, and settings that do not apply to chunks, registering nothing', async () => {
    const refusals = [
      [{ layout: 'zip' }, 'layout must be one of qcow2, chunks'],
      [{ layout: 'chunks', maxChainDepth: 5 }, 'maxChainDepth does not apply to a chunks repository'],
    ] as const;
    for (const [settings, message] of refusals) {
      const res = await lab.api('POST', '/api/v1/repositories', { name: 'bad', kind: 'local', path: join(lab.dir, 'bad'), ...settings });
      expect({ status: res.status, message: JSON.stringify(res.body.message) }).toEqual({ status: 400, message: expect.stringContaining(message) });
    }
    expect(((await lab.api('GET', '/api/v1/repositories')).body as { name: string }[]).map((r) => r.name)).toEqual(['lab']);
  });

  it('registers an encrypted chunks repository; its chain length cannot be bounded', async () => {
    const res = await lab.api('POST', '/api/v1/repositories', { name: 'dedup', kind: 'local', path: root(), layout: 'chunks', encryption: { keyFile } });
    expect(res.status).toBe(201);
    repositoryId = res.body.repositoryId;
    const listed = ((await lab.api('GET', '/api/v1/repositories')).body as any[]).find((r) => r.name === 'dedup');
    expect(listed).toMatchObject({ layout: 'chunks', encryption: { keyFile } });
    const patch = await lab.api('PATCH', `/api/v1/repositories/${repositoryId}`, { maxChainDepth: 4 });
    expect({ status: patch.status, message: patch.body.message }).toEqual({ status: 400, message: 'maxChainDepth does not apply to repository dedup: its layout is chunks, each of its points is whole' });
  });

  it('backs up fulls and incrementals into the store, stores unchanged data once, and reads every point back by download, mount and verify; no plaintext reaches the disk', async () => {
    const full = await backup('full');
    const afterFull = join(lab.dir, 'full-disk0.raw');
    await download(full, 'disk0', afterFull);
    await run('qemu-img', ['compare', '-q', '-f', 'raw', '-F', 'qcow2', afterFull, lab.vm.disks[0].path]);

    // a second full of the unchanged VM stores (almost) nothing new: every block is already in the store
    const packsBefore = bytesUnder(join(store(), 'packs'));
    const again = await backup('full');
    expect(bytesUnder(join(store(), 'packs')) - packsBefore).toBeLessThan(MiB);

    const markerFile = join(lab.dir, 'marker.txt');
    writeFileSync(markerFile, `${MARKER}\n`.repeat(2048));
    await run('qemu-io', ['-f', 'qcow2', '-c', `write -s ${markerFile} ${40 * MiB} ${statSync(markerFile).size}`, lab.vm.disks[0].path]);
    const incremental = await backup('auto');
    await run('qemu-io', ['-f', 'qcow2', '-c', `write -P 0x6b ${44 * MiB} ${MiB}`, lab.vm.disks[1].path]);
    const newest = await backup('auto');

    const listed = await points();
    expect(listed.map((p) => [p.restorePointId, p.type])).toEqual([[full, 'full'], [again, 'full'], [incremental, 'incremental'], [newest, 'incremental']]);
    for (const p of listed) for (const d of p.disks) expect(d.file).toBe(`chunks/points/vm1/${p.restorePointId}/${d.diskId}.idx`);
    // no qcow2 file in the repository: the points are the store's indexes
    expect(filesUnder(root()).filter((f) => f.endsWith('.qcow2'))).toEqual([]);
    const source = readFileSync(lab.vm.disks[0].path);
    expect([source.includes(MARKER), source.includes(NOTES.repeat(4))]).toEqual([true, true]);
    expectNoPlaintext();
    // compressed and deduplicated: four points of 160 MiB of disks, 8 MiB of it data, in a fraction of the data's size
    expect(bytesUnder(join(store(), 'packs'))).toBeLessThan(8 * MiB);

    // whole disks come back as the guest wrote them
    for (const [n, disk] of lab.vm.disks.entries()) {
      const out = join(lab.dir, `restored-${n}.raw`);
      await download(newest, disk.diskId, out);
      await run('qemu-img', ['compare', '-q', '-f', 'raw', '-F', 'qcow2', out, disk.path]);
    }

    // a client that takes frames with the codec gets the stored blocks' zstd as it is, fewer bytes for the same disk;
    // the CLI asks for it and decompresses on its side
    const image = `http://127.0.0.1:${lab.apiPort}/api/v1/restore-points/${newest}/disks/disk0/image?format=raw`;
    const framedAs = async (accept: string) => {
      const res = await fetch(image, { headers: { Authorization: `Bearer ${LAB_TOKEN}`, Accept: accept } });
      expect(res.status).toBe(200);
      return { type: res.headers.get('content-type'), bytes: (await res.arrayBuffer()).byteLength };
    };
    const packed = await framedAs(`${EXTENTS_MEDIA_TYPE}; ${ZSTD_CODEC}, ${EXTENTS_MEDIA_TYPE}`);
    const plain = await framedAs(EXTENTS_MEDIA_TYPE);
    expect([packed.type, plain.type]).toEqual([`${EXTENTS_MEDIA_TYPE}; ${ZSTD_CODEC}`, EXTENTS_MEDIA_TYPE]);
    expect(packed.bytes).toBeLessThan(plain.bytes);
    const viaCli = join(lab.dir, 'cli-disk0.raw');
    const restore = spawnSendense(['restore', 'disk', newest, '--disk', 'disk0', '-o', viaCli], { SENDENSE_HUB: `http://127.0.0.1:${lab.apiPort}`, SENDENSE_TOKEN: LAB_TOKEN });
    expect(await restore.exited).toMatchObject({ code: 0 });
    await run('qemu-img', ['compare', '-q', '-f', 'raw', '-F', 'qcow2', viaCli, lab.vm.disks[0].path]);

    // a file of the guest's filesystem, from the newest point
    const mount = await lab.api('POST', '/api/v1/restore/mounts', { restorePointId: newest, diskId: 'disk0' });
    expect(mount.status).toBe(201);
    const file = await fetch(`http://127.0.0.1:${lab.apiPort}/api/v1/restore/mounts/${mount.body.mountId}/file?volume=${mount.body.volumes[0].id}&path=/data/notes.txt`, { headers: { Authorization: `Bearer ${LAB_TOKEN}` } });
    expect(file.status).toBe(200);
    expect(await file.text()).toBe(NOTES.repeat(1000));
    expect((await lab.api('DELETE', `/api/v1/restore/mounts/${mount.body.mountId}`)).status).toBe(200);

    // an NBD export of the point, with TLS-PSK, as a hypervisor-less restore reads it; the point cannot go while it is open
    const opened = await lab.api('POST', `/api/v1/restore-points/${newest}/exports`, { diskIds: ['disk0'] });
    expect(opened.status).toBe(201);
    const d = opened.body.disks[0];
    const pskDir = join(lab.dir, 'export-psk');
    mkdirSync(pskDir);
    writeFileSync(join(pskDir, 'keys.psk'), `${d.psk.identity}:${d.psk.key}\n`, { mode: 0o600 });
    const viaNbd = join(lab.dir, 'export-disk0.raw');
    await run('qemu-img', ['convert', '--object', `tls-creds-psk,id=tls0,endpoint=client,dir=${pskDir},username=${d.psk.identity}`, '--image-opts', `driver=nbd,server.type=inet,server.host=${d.host},server.port=${d.port},export=${d.exportName},tls-creds=tls0`, '-O', 'raw', viaNbd]);
    await run('qemu-img', ['compare', '-q', '-f', 'raw', '-F', 'qcow2', viaNbd, lab.vm.disks[0].path]);
    expect((await lab.api('DELETE', `/api/v1/restore-points/${newest}`)).status).toBe(409);
    expect((await lab.api('DELETE', `/api/v1/restore-point-exports/${opened.body.exportId}`)).status).toBe(200);

    for (const p of listed) {
      const verified = await lab.api('POST', `/api/v1/restore-points/${p.restorePointId}/verify`);
      expect({ id: p.restorePointId, status: verified.status, ok: verified.body.content?.ok, problems: verified.body.content?.problems, digests: verified.body.content?.digests }).toEqual({ id: p.restorePointId, status: 201, ok: true, problems: [], digests: 'all' });
    }
    // the saving, as the hub measured it after the backups: every point protects the VM's data, stored once, compressed
    let repo: any;
    await lab.until(async () => {
      repo = (await lab.api('GET', `/api/v1/repositories/${repositoryId}`)).body;
      return repo.chunks?.pointDisks === 8;
    }, 30_000, 'the store to be measured after the fourth backup');
    const packs = bytesUnder(join(store(), 'packs'));
    expect(repo.chunks).toMatchObject({ pointDisks: 8, storedBytes: packs + bytesUnder(join(store(), 'points')), garbageBytes: 0, lastCollection: null });
    // four points of one VM whose data barely changed: each block stored about once
    expect(repo.chunks.deduplication).toBeGreaterThan(2.5);
    expect(repo.chunks.compression).toBeGreaterThan(1);
    expect(repo.chunks.reduction).toBeGreaterThan(repo.chunks.deduplication);
    // the space its points take is the store's, which they share, not their index files: the usage history follows it
    const usage = async () => (await lab.api('GET', `/api/v1/repositories/${repositoryId}/usage`)).body;
    await lab.until(async () => (await usage()).pointsBytes === repo.chunks.storedBytes, 30_000, 'the usage history to follow the store');
    expect((await usage()).samples.at(-1).usedBytes).toBe(repo.chunks.storedBytes);
    expect((await lab.api('GET', `/api/v1/repositories/${repositoryId}`)).body.pointsBytes).toBe(repo.chunks.storedBytes);
    const metrics = await (await fetch(`http://127.0.0.1:${lab.apiPort}/metrics`, { headers: { Authorization: `Bearer ${LAB_TOKEN}` } })).text();
    expect(metrics).toContain(`sendense_repository_logical_bytes{repository="dedup"} ${repo.chunks.logicalBytes}`);
    expect(metrics).toContain(`sendense_repository_stored_bytes{repository="dedup"} ${repo.chunks.storedBytes}`);
    const cli = spawnSendense(['repository', 'list'], { SENDENSE_HUB: `http://127.0.0.1:${lab.apiPort}`, SENDENSE_TOKEN: LAB_TOKEN });
    expect(await cli.exited).toMatchObject({ code: 0 });
    expect(cli.output()).toMatch(new RegExp(`${repositoryId}  dedup  chunks  .* stored for .* protected: reduction ${repo.chunks.reduction.toFixed(2)}x \\(deduplication ${repo.chunks.deduplication.toFixed(2)}x, compression ${repo.chunks.compression.toFixed(2)}x\\), 0 B garbage`));

    // no export process (qemu-nbd or the chunk store's server) and no port outlives its job
    expect(processesMentioning(lab.hubDataDir).filter((p) => p.cmdline.includes('qemu-nbd') || p.cmdline.includes('chunk-nbd'))).toEqual([]);
    expect((await lab.api('GET', '/api/v1/nbd/ports')).body).toEqual([]);
  }, 600_000);

  it('a hub SIGKILLed while a backup writes into the store: after a restart the job ends without a half point, nothing of it runs on, and the next backup works', async () => {
    const before = (await points()).map((p) => p.restorePointId);
    await run('qemu-io', ['-f', 'qcow2', '-c', `write -P 0x3c ${24 * MiB} ${8 * MiB}`, lab.vm.disks[1].path]);
    const requested = await lab.api('POST', '/api/v1/backups', { vmId: 'vm1', repositoryId, type: 'full' });
    expect(requested.status).toBe(202);
    const jobId = requested.body.jobId as string;
    let writer: { pid: number; cmdline: string } | undefined;
    const deadline = Date.now() + 60_000;
    while (!writer && Date.now() < deadline) {
      writer = processesMentioning(lab.hubDataDir).find((p) => p.cmdline.includes('chunk-nbd.main.js') && p.cmdline.includes('--commit='));
      if (!writer) await new Promise((r) => setTimeout(r, 2));
    }
    expect(writer).toBeDefined();
    await lab.stop(lab.hub, 'SIGKILL');
    // a writer whose hub is gone ends without committing (chunk-nbd.main.ts): nothing of the job is left for the restarted hub but its record
    await lab.startHub();
    const ended = await lab.waitForJob(jobId, 60_000);
    expect(['failed', 'completed']).toContain(ended.status);
    await lab.until(async () => processesMentioning(lab.hubDataDir).every((p) => !p.cmdline.includes('chunk-nbd')), 20_000, 'the export to stop');
    expect((await lab.api('GET', '/api/v1/nbd/ports')).body).toEqual([]);
    const now = (await points()).map((p) => p.restorePointId);
    const index = join(store(), 'points', 'vm1', ended.restorePointId);
    if (ended.status === 'failed') {
      expect(ended.error).toMatch(/hub restart/);
      expect(now).toEqual(before);
      expect(existsSync(index)).toBe(false);
    } else {
      expect(now).toEqual([...before, ended.restorePointId]);
      expect((await lab.api('POST', `/api/v1/restore-points/${ended.restorePointId}/verify`)).body.content.ok).toBe(true);
    }
    await lab.until(async () => (await lab.api('GET', '/api/v1/agents')).body[0]?.connected === true, 30_000, 'the agent to reconnect');
    const next = await backup('full');
    const out = join(lab.dir, 'after-kill.raw');
    await download(next, 'disk1', out);
    await run('qemu-img', ['compare', '-q', '-f', 'raw', '-F', 'qcow2', out, lab.vm.disks[1].path]);
  }, 300_000);

  it('deletes points oldest first and in the middle; the points after them read as before', async () => {
    const [full, again, incremental, newest, ...later] = (await points()).map((p) => p.restorePointId);
    expect((await lab.api('DELETE', `/api/v1/restore-points/${incremental}`)).status).toBe(200);
    expect((await lab.api('DELETE', `/api/v1/restore-points/${full}`)).status).toBe(200);
    expect((await points()).map((p) => p.restorePointId)).toEqual([again, newest, ...later]);
    expect(readdirSync(join(store(), 'points', 'vm1')).sort()).toEqual([again, newest, ...later].sort());
    expect(filesUnder(join(store(), 'points')).map((f) => f.slice(store().length + 1)).sort()).toEqual(
      [again, newest, ...later].flatMap((id) => ['disk0', 'disk1'].map((d) => `points/vm1/${id}/${d}.idx`)).sort(),
    );
    for (const id of [again, newest]) {
      const verified = await lab.api('POST', `/api/v1/restore-points/${id}/verify`);
      expect({ id, ok: verified.body.content?.ok, problems: verified.body.content?.problems, digests: verified.body.content?.digests }).toEqual({ id, ok: true, problems: [], digests: 'all' });
    }
    const out = join(lab.dir, 'after-delete.raw');
    await download(later.at(-1) ?? newest, 'disk0', out);
    await run('qemu-img', ['compare', '-q', '-f', 'raw', '-F', 'qcow2', out, lab.vm.disks[0].path]);
  }, 300_000);

  it('a hub that lost its database registers the repository again, rescans it, and reads every point as the first hub did', async () => {
    const kept = await points();
    // another hub process, on a database of its own, given the same directory and key: what a hub rebuilt after a disaster has
    const rebuilt = new BackupLab({ DATABASE_URL: '' });
    try {
      await rebuilt.startHubOnly();
      const registered = await rebuilt.api('POST', '/api/v1/repositories', { name: 'dedup', kind: 'local', path: root(), layout: 'chunks', encryption: { keyFile } });
      expect(registered.status).toBe(201);
      const report = await rebuilt.api('POST', `/api/v1/repositories/${registered.body.repositoryId}/rescan`);
      expect(report).toMatchObject({ status: 201, body: { vms: ['vm1'], added: kept.map((p) => p.restorePointId), broken: [], invalidManifests: [] } });
      const found = (await rebuilt.api('GET', `/api/v1/vms/vm1/restore-points?repositoryId=${registered.body.repositoryId}`)).body as any[];
      expect(found.map((p) => [p.restorePointId, p.type, p.disks.map((d: { file: string }) => d.file)])).toEqual(kept.map((p) => [p.restorePointId, p.type, p.disks.map((d: { file: string }) => d.file)]));
      const newest = found.at(-1).restorePointId;
      const out = join(rebuilt.dir, 'rescanned-disk0.raw');
      const res = await fetch(`http://127.0.0.1:${rebuilt.apiPort}/api/v1/restore-points/${newest}/disks/disk0/image?format=raw`, { headers: { Authorization: `Bearer ${LAB_TOKEN}` } });
      expect(res.status).toBe(200);
      await pipeline(Readable.fromWeb(res.body as any), createWriteStream(out));
      await run('qemu-img', ['compare', '-q', '-f', 'raw', '-F', 'qcow2', out, lab.vm.disks[0].path]);
      const verified = await rebuilt.api('POST', `/api/v1/restore-points/${newest}/verify`);
      expect(verified.body.content).toMatchObject({ ok: true, problems: [], digests: 'all' });
      // its own figures of the store, measured as the first hub measures them
      await rebuilt.until(async () => (await rebuilt.api('GET', `/api/v1/repositories/${registered.body.repositoryId}`)).body.chunks?.pointDisks === kept.length * 2, 30_000, 'the rebuilt hub to measure the store');
    } finally {
      await rebuilt.close();
    }
  }, 300_000);

  it('collects the garbage of deletes by itself, frees every pack once no point is left, and refuses a collection of a qcow2 repository', async () => {
    // after the deletes above the hub collected by itself (recorded on the repository's stream)
    await lab.until(async () => (await lab.api('GET', `/api/v1/repositories/${repositoryId}`)).body.chunks?.lastCollection !== null, 30_000, 'the collection after the deletes');
    const events = (await lab.api('GET', `/api/v1/audit/streams/repository-${repositoryId}?limit=1000`)).body.events.map((e: any) => e.type);
    expect(events).toContain('RepositoryGarbageCollected');
    for (const p of await points()) expect((await lab.api('DELETE', `/api/v1/restore-points/${p.restorePointId}`)).status).toBe(200);
    const refused = await lab.api('POST', `/api/v1/repositories/${lab.repositoryId}/gc`);
    expect({ status: refused.status, message: refused.body.message }).toEqual({ status: 400, message: 'repository lab has no chunk store: its layout is qcow2' });
    const cli = spawnSendense(['repository', 'gc', repositoryId], { SENDENSE_HUB: `http://127.0.0.1:${lab.apiPort}`, SENDENSE_TOKEN: LAB_TOKEN });
    expect(await cli.exited).toMatchObject({ code: 0 });
    expect(cli.output()).toMatch(/^freed .* \(\d+ pack\(s\) removed, \d+ repacked\) in \d+ ms; 0 B stored for 0 B protected\n$/);
    expect(readdirSync(join(store(), 'packs'))).toEqual([]);
    expect((await lab.api('GET', `/api/v1/repositories/${repositoryId}`)).body.chunks).toMatchObject({ pointDisks: 0, logicalBytes: 0, storedBytes: 0, garbageBytes: 0 });
    await lab.until(async () => (await lab.api('GET', `/api/v1/repositories/${repositoryId}`)).body.pointsBytes === 0, 30_000, 'the emptied store to show in its points bytes');
  }, 120_000);
});
