import { execFile } from 'node:child_process';
import { createHash, randomBytes } from 'node:crypto';
import { createWriteStream, mkdirSync, readFileSync, readdirSync, renameSync, statSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { Readable } from 'node:stream';
import { pipeline } from 'node:stream/promises';
import { promisify } from 'node:util';
import { MiB } from '../fixtures/vm/sample-vm';
import { BackupLab, LAB_TOKEN } from '../support/backup-lab';
import { spawnSendense } from '../support/processes';

const run = promisify(execFile);

/** Every file under dir, recursively. */
function filesUnder(dir: string): string[] {
  return readdirSync(dir, { withFileTypes: true }).flatMap((e) => (e.isDirectory() ? filesUnder(join(dir, e.name)) : [join(dir, e.name)]));
}

/**
 * An encrypted repository on real files with a real hub and agent (qcow2's LUKS encryption through the hub's own
 * qemu-img and qemu-nbd), and a second real hub that syncs its points into a repository encrypted with another key.
 */
describe('encrypted repository (real hub + agent, qcow2 LUKS on real files, a second hub syncing it)', () => {
  const primary = new BackupLab({ DATABASE_URL: '' });
  const target = new BackupLab({ DATABASE_URL: '' });
  // what the guest wrote: text of its ext4 files (the sample VM's notes), and a marker written into the disk before the incremental
  const NOTES = 'disk 0 of vm1\n';
  const MARKER = `SENDENSE-PLAINTEXT-MARKER-${randomBytes(8).toString('hex')}`;
  let keyFile = '';
  let repositoryId = '';
  let fingerprint = '';
  const root = () => join(primary.dir, 'secret');

  beforeAll(async () => {
    await primary.start([64 * MiB, 96 * MiB], [0, 8 * MiB]);
    await target.startHubOnly();
    mkdirSync(join(primary.dir, 'keys'), { mode: 0o700 });
    keyFile = join(primary.dir, 'keys', 'secret.key');
    writeFileSync(keyFile, `${randomBytes(32).toString('hex')}\n`, { mode: 0o600 });
    fingerprint = `sha256:${createHash('sha256').update(readFileSync(keyFile)).digest('hex')}`;
  }, 180_000);
  afterAll(async () => {
    await primary.close();
    await target.close();
  }, 60_000);

  const points = async (lab = primary, repo = repositoryId) => (await lab.api('GET', `/api/v1/vms/vm1/restore-points?repositoryId=${repo}`)).body as any[];
  const backup = async (type: 'full' | 'auto') => {
    const res = await primary.api('POST', '/api/v1/backups', { vmId: 'vm1', repositoryId, type });
    expect(res.status).toBe(202);
    const job = await primary.waitForJob(res.body.jobId, 120_000);
    if (job.status !== 'completed') throw new Error(`backup ${job.status}: ${JSON.stringify(job)}\n${primary.hub?.output().slice(-3000)}`);
    return job.restorePointId as string;
  };
  const download = async (lab: BackupLab, restorePointId: string, diskId: string, out: string) => {
    const res = await fetch(`http://127.0.0.1:${lab.apiPort}/api/v1/restore-points/${restorePointId}/disks/${diskId}/image?format=raw`, { headers: { Authorization: `Bearer ${LAB_TOKEN}` } });
    expect(res.status).toBe(200);
    await pipeline(Readable.fromWeb(res.body as any), createWriteStream(out));
  };
  /** The marker and the guest's text appear nowhere in the repository's files, encrypted or not. */
  const expectNoPlaintext = (dir: string) => {
    const files = filesUnder(dir).filter((f) => f.endsWith('.qcow2'));
    expect(files.length).toBeGreaterThan(0);
    for (const file of files) {
      const bytes = readFileSync(file);
      expect({ file, marker: bytes.includes(MARKER), notes: bytes.includes(NOTES.repeat(4)) }).toEqual({ file, marker: false, notes: false });
    }
  };

  it('refuses a key file it cannot use, and an encryption that is not {keyFile}, registering nothing', async () => {
    const short = join(primary.dir, 'keys', 'short.key');
    writeFileSync(short, 'tooshort');
    const binary = join(primary.dir, 'keys', 'binary.key');
    writeFileSync(binary, Buffer.concat([randomBytes(40), Buffer.from([0xff, 0xfe, 0x00])]));
    const refusals = [
      [{ keyFile: 'keys/secret.key' }, 'encryption.keyFile must be an absolute path'],
      [{ keyFile: join(primary.dir, 'keys', 'missing.key') }, `key file ${join(primary.dir, 'keys', 'missing.key')} cannot be read: ENOENT`],
      [{ keyFile: short }, `key file ${short} holds 8 bytes; a key is 32 to 4096 bytes of text`],
      [{ keyFile: binary }, `key file ${binary} is not UTF-8 text`],
      ['aes', 'encryption must be an object {keyFile}'],
    ] as const;
    for (const [encryption, message] of refusals) {
      const res = await primary.api('POST', '/api/v1/repositories', { name: 'bad', kind: 'local', path: join(primary.dir, 'bad'), encryption });
      expect({ status: res.status, message: JSON.stringify(res.body.message) }).toEqual({ status: 400, message: expect.stringContaining(message) });
    }
    expect(((await primary.api('GET', '/api/v1/repositories')).body as { name: string }[]).map((r) => r.name)).toEqual(['lab']);
  });

  it("the CLI registers an encrypted repository; the key's fingerprint is recorded, never the key", async () => {
    const cli = spawnSendense(['repository', 'add', '--name', 'secret', '--path', root(), '--key-file', keyFile], { SENDENSE_HUB: `http://127.0.0.1:${primary.apiPort}`, SENDENSE_TOKEN: LAB_TOKEN });
    expect(await cli.exited).toMatchObject({ code: 0 });
    expect(cli.output()).toContain(`secret  ${root()}`);
    expect(cli.output()).toContain(`encrypted with key ${fingerprint}`);
    const listed = ((await primary.api('GET', '/api/v1/repositories')).body as any[]).find((r) => r.name === 'secret');
    expect(listed.encryption).toEqual({ keyFile, keyFingerprint: fingerprint });
    repositoryId = listed.repositoryId;
    const events = (await primary.api('GET', `/api/v1/audit/streams/repository-${repositoryId}`)).body.events;
    expect(events[0]).toMatchObject({ type: 'RepositoryRegistered', data: { encryption: { keyFile, fingerprint } } });
    expect(JSON.stringify(events)).not.toContain(readFileSync(keyFile, 'utf8').trim());
  });

  it('backs up, adds incrementals, restores a file and a disk, verifies and merges encrypted points; no plaintext reaches the disk', async () => {
    const full = await backup('full');
    // the marker, written into the guest's disk past its filesystem
    const markerFile = join(primary.dir, 'marker.txt');
    writeFileSync(markerFile, `${MARKER}\n`.repeat(2048));
    await run('qemu-io', ['-f', 'qcow2', '-c', `write -s ${markerFile} ${40 * MiB} ${statSync(markerFile).size}`, primary.vm.disks[0].path]);
    const incremental = await backup('auto');
    await run('qemu-io', ['-f', 'qcow2', '-c', `write -P 0x6b ${44 * MiB} ${MiB}`, primary.vm.disks[1].path]);
    const newest = await backup('auto');
    const listed = await points();
    expect(listed.map((p) => [p.restorePointId, p.type])).toEqual([[full, 'full'], [incremental, 'incremental'], [newest, 'incremental']]);

    // what the guest wrote is in its own disk in the clear (so the search below can find it), and nowhere in the repository
    const source = readFileSync(primary.vm.disks[0].path);
    expect([source.includes(MARKER), source.includes(NOTES.repeat(4))]).toEqual([true, true]);
    for (const p of listed) {
      for (const d of p.disks) expect(JSON.parse((await run('qemu-img', ['info', '-U', '--output=json', join(root(), d.file)])).stdout).encrypted).toBe(true);
    }
    expectNoPlaintext(root());

    // a file of the guest's filesystem, from the newest point
    const mount = await primary.api('POST', '/api/v1/restore/mounts', { restorePointId: newest, diskId: 'disk0' });
    expect(mount.status).toBe(201);
    const file = await fetch(`http://127.0.0.1:${primary.apiPort}/api/v1/restore/mounts/${mount.body.mountId}/file?volume=${mount.body.volumes[0].id}&path=/data/notes.txt`, { headers: { Authorization: `Bearer ${LAB_TOKEN}` } });
    expect(file.status).toBe(200);
    expect(await file.text()).toBe(NOTES.repeat(1000));
    expect((await primary.api('DELETE', `/api/v1/restore/mounts/${mount.body.mountId}`)).status).toBe(200);

    // whole disks come back in the clear, as the guest wrote them
    for (const [n, disk] of primary.vm.disks.entries()) {
      const out = join(primary.dir, `restored-${n}.raw`);
      await download(primary, newest, disk.diskId, out);
      await run('qemu-img', ['compare', '-q', '-f', 'raw', '-F', 'qcow2', out, disk.path]);
    }
    // a range that starts and ends inside the 512-byte sectors qemu decrypts whole, across the marker: those bytes exactly,
    // as the whole disk downloaded above holds them
    const [first, last] = [40 * MiB - 1000, 40 * MiB + 70_000 + 3];
    const range = await fetch(`http://127.0.0.1:${primary.apiPort}/api/v1/restore-points/${newest}/disks/disk0/image?format=raw`, { headers: { Authorization: `Bearer ${LAB_TOKEN}`, Range: `bytes=${first}-${last}` } });
    expect(range.status).toBe(206);
    const body = Buffer.from(await range.arrayBuffer());
    expect(body.length).toBe(last - first + 1);
    expect(body.equals(readFileSync(join(primary.dir, 'restored-0.raw')).subarray(first, last + 1))).toBe(true);

    for (const p of listed) {
      const verified = await primary.api('POST', `/api/v1/restore-points/${p.restorePointId}/verify`);
      expect({ id: p.restorePointId, status: verified.status, ok: verified.body.content?.ok, problems: verified.body.content?.problems, digests: verified.body.content?.digests }).toEqual({ id: p.restorePointId, status: 201, ok: true, problems: [], digests: 'all' });
    }

    // deleting the oldest point merges it into the next (qemu-img commit and rebase with the key); the rest reads the same
    expect((await primary.api('DELETE', `/api/v1/restore-points/${full}`)).status).toBe(200);
    expect((await points()).map((p) => p.restorePointId)).toEqual([incremental, newest]);
    for (const id of [incremental, newest]) expect((await primary.api('POST', `/api/v1/restore-points/${id}/verify`)).body.content.ok).toBe(true);
    const after = join(primary.dir, 'after-merge.raw');
    await download(primary, newest, 'disk0', after);
    await run('qemu-img', ['compare', '-q', '-f', 'raw', '-F', 'qcow2', after, primary.vm.disks[0].path]);
    expectNoPlaintext(root());
    expect(await primary.leftovers()).toEqual({ qemuNbd: [], leases: 0, strayFiles: [] });
  }, 600_000);

  it('a second hub syncs the encrypted points into its own repository, encrypted with its own key', async () => {
    const targetKey = join(target.dir, 'offsite.key');
    writeFileSync(targetKey, randomBytes(32).toString('hex'), { mode: 0o600 });
    const repo = await target.api('POST', '/api/v1/repositories', { name: 'offsite', kind: 'local', path: join(target.dir, 'offsite'), encryption: { keyFile: targetKey } });
    expect(repo.status).toBe(201);
    const identity = (await primary.api('GET', '/api/v1/identity')).body;
    const token = (await primary.api('POST', '/api/v1/tokens', { name: 'offsite', role: 'sync' })).body.token;
    const remote = await target.api('POST', '/api/v1/remotes', { name: 'primary', url: `ssh://127.0.0.1:${primary.sshPort}`, token, fingerprint: identity.ssh.hostKeyFingerprint });
    expect(remote.status).toBe(201);
    const job = await target.api('POST', '/api/v1/sync-jobs', { remoteId: remote.body.remoteId, repositoryId: repo.body.repositoryId, remoteRepositoryId: repositoryId, vms: ['vm1'] });
    const started = await target.api('POST', `/api/v1/sync-jobs/${job.body.syncJobId}/run`);
    expect(started.status).toBe(202);
    let lastRun: any;
    await target.until(async () => {
      lastRun = (await target.api('GET', `/api/v1/sync-jobs/${job.body.syncJobId}`)).body.lastRun;
      return lastRun?.runId === started.body.runId && lastRun.status !== 'running';
    }, 180_000, 'the sync run to end');
    expect({ status: lastRun.status, reason: lastRun.reason, synced: lastRun.synced }).toEqual({ status: 'completed', reason: null, synced: (await points()).map((p) => p.restorePointId) });

    const synced = await points(target, repo.body.repositoryId);
    for (const p of synced) {
      expect((await target.api('POST', `/api/v1/restore-points/${p.restorePointId}/verify`)).body.content.ok).toBe(true);
      for (const d of p.disks) {
        expect(JSON.parse((await run('qemu-img', ['info', '-U', '--output=json', join(target.dir, 'offsite', d.file)])).stdout).encrypted).toBe(true);
        const [mine, theirs] = [join(target.dir, `${d.diskId}-target.raw`), join(target.dir, `${d.diskId}-primary.raw`)];
        await download(target, p.restorePointId, d.diskId, mine);
        await download(primary, p.restorePointId, d.diskId, theirs);
        await run('cmp', [mine, theirs]);
      }
    }
    expectNoPlaintext(join(target.dir, 'offsite'));
  }, 300_000);

  it("a hub without the key refuses that repository's operations with a clear error and changes nothing; with the key back it works again", async () => {
    const [oldest, newest] = (await points()).map((p) => p.restorePointId);
    const before = filesUnder(root()).map((f) => [f, statSync(f).size, statSync(f).mtimeMs]);
    const jobsBefore = (await primary.api('GET', '/api/v1/backups?limit=100')).body.jobs.length;
    await primary.stop(primary.hub);
    renameSync(keyFile, `${keyFile}.away`);
    await primary.startHub();

    const missing = `repository secret is encrypted with key ${fingerprint}, and this hub cannot use it: key file ${keyFile} cannot be read: ENOENT`;
    const refused = async (message: string) => {
      const attempts = {
        backup: await primary.api('POST', '/api/v1/backups', { vmId: 'vm1', repositoryId, type: 'full' }),
        mount: await primary.api('POST', '/api/v1/restore/mounts', { restorePointId: newest, diskId: 'disk0' }),
        verify: await primary.api('POST', `/api/v1/restore-points/${newest}/verify`),
        delete: await primary.api('DELETE', `/api/v1/restore-points/${oldest}`),
        image: await primary.api('GET', `/api/v1/restore-points/${newest}/disks/disk0/image?format=raw`),
      };
      for (const [what, res] of Object.entries(attempts)) expect({ what, status: res.status, message: res.body?.message }).toEqual({ what, status: 409, message });
    };
    await refused(missing);
    // another key in its place is refused as well, by its fingerprint
    const other = randomBytes(32).toString('hex');
    writeFileSync(keyFile, other, { mode: 0o600 });
    await refused(`repository secret is encrypted with key ${fingerprint}, but key file ${keyFile} holds key sha256:${createHash('sha256').update(other).digest('hex')}`);

    expect((await points()).map((p) => p.restorePointId)).toEqual([oldest, newest]);
    expect(filesUnder(root()).map((f) => [f, statSync(f).size, statSync(f).mtimeMs])).toEqual(before);
    expect((await primary.api('GET', '/api/v1/backups?limit=100')).body.jobs.length).toBe(jobsBefore);
    expect((await primary.api('GET', '/api/v1/health')).status).toBe(200);
    expect(primary.hub!.output()).toContain(`repository secret is encrypted with key ${fingerprint}, and this hub cannot use it`);

    renameSync(`${keyFile}.away`, keyFile);
    expect((await primary.api('POST', `/api/v1/restore-points/${newest}/verify`)).body.content.ok).toBe(true);
    await backup('auto');
    expectNoPlaintext(root());
  }, 300_000);
});
