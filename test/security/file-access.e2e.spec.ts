import { execFile } from 'node:child_process';
import { createHash } from 'node:crypto';
import { chmodSync, chownSync, existsSync, mkdirSync, mkdtempSync, readFileSync, rmSync, symlinkSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { promisify } from 'node:util';
import { pidsMentioning } from '../fixtures/qemu-nbd-processes';
import { buildRepositoryChain } from '../fixtures/qcow2/repository-chain';
import { eventCount, startTestHub, TestHub } from '../support/test-hub';

const run = promisify(execFile);
const MARKER = '.sendense-repository';
const sha256 = (file: string) => createHash('sha256').update(readFileSync(file)).digest('hex');

/**
 * The attack: with a stolen admin token and a foothold on the hub, register any directory as a repository (which made
 * it an export root), then have the hub serve any file in it writable over NBD on loopback, and overwrite it (e.g.
 * /etc/shadow) with qemu-io. Real hub, real database, real qemu-nbd and qemu-io.
 */
describe('no generic file access through the API', () => {
  let hub: TestHub;
  let dir: string;

  beforeAll(async () => {
    hub = await startTestHub({ SENDENSE_NBD_PORTS: '13300-13309', SENDENSE_NBD_BIND: '127.0.0.1' });
  });
  afterAll(async () => {
    await hub.close();
  });
  beforeEach(() => {
    dir = mkdtempSync(join(tmpdir(), 'sendense-security-'));
  });
  afterEach(() => {
    rmSync(dir, { recursive: true, force: true });
  });

  const register = (path: string, name = 'attack') => hub.admin(hub.http().post('/api/v1/repositories')).send({ name, kind: 'local', path });

  /** Refused with 400 and a reason, no event appended, and no marker (nor directory) made where it points. */
  async function expectRefused(path: string, reason: RegExp, where = path): Promise<void> {
    const existed = existsSync(where);
    const before = await eventCount(hub.db);
    const res = await register(path).expect(400);
    expect(res.body.message).toMatch(reason);
    expect(await eventCount(hub.db)).toBe(before);
    expect(existsSync(join(where, MARKER))).toBe(false);
    expect(existsSync(where)).toBe(existed);
  }

  describe('a repository cannot be registered where it would expose or overwrite what is not its own', () => {
    it.each([
      ['/', /\/ is the whole file system/],
      ['/etc', /\/etc is a system directory/],
      ['/etc/sendense-repository', /\/etc is a system directory/],
      ['/usr', /\/usr is a system directory/],
      ['/boot', /\/boot is a system directory/],
      ['/proc', /\/proc is a system directory/],
      ['/sys', /\/sys is a system directory/],
      ['/dev', /\/dev is a system directory/],
      ['/root', /\/root is a system directory/],
      ['/bin', /is a system directory/],
      ['/sbin', /is a system directory/],
      ['/lib', /is a system directory/],
      ['/lib64', /is a system directory/],
      ['/run', /\/run is a system directory/],
      ['/var', /\/var is a system directory shared by the whole host/],
      ['/var/lib', /\/var\/lib is a system directory shared by the whole host/],
      ['/var/lib/dpkg', /\/var\/lib\/dpkg is the state directory of another program/],
      ['/var/lib/sendense-test-new-dir/../dpkg', /must not contain "\.\."/],
    ])('POST /repositories at %s → 400, nothing appended, nothing written there', async (path, reason) => {
      await expectRefused(path, reason);
    });

    it("POST /repositories at the hub's data directory, a directory in it, or a symlink to it → 400", async () => {
      await expectRefused(hub.dataDir, /the hub's data directory/);
      await expectRefused(join(hub.dataDir, 'run'), /the hub's data directory/);
      await expectRefused(join(hub.dataDir, 'new-repo'), /the hub's data directory/);
      symlinkSync(hub.dataDir, join(dir, 'data-link'));
      await expectRefused(join(dir, 'data-link'), /the hub's data directory/, hub.dataDir);
    });

    it('POST /repositories at a symlink to /etc, or at a new directory below one → 400', async () => {
      symlinkSync('/etc', join(dir, 'etc-link'));
      await expectRefused(join(dir, 'etc-link'), /\/etc is a system directory/, '/etc');
      await expectRefused(join(dir, 'etc-link', 'sendense'), /\/etc is a system directory/, '/etc/sendense');
    });

    it("POST /repositories at a non-empty directory of someone else's files → 400, its files untouched", async () => {
      const foreign = join(dir, 'home-alice');
      mkdirSync(join(foreign, 'projects'), { recursive: true });
      writeFileSync(join(foreign, 'notes.txt'), 'mine\n');
      await expectRefused(foreign, /is not empty and is not a Sendense repository \(it holds notes\.txt, projects\)/);
      expect(readFileSync(join(foreign, 'notes.txt'), 'utf8')).toBe('mine\n');
    });

    it('POST /repositories at a directory another user owns or every user may write, or below one → 400', async () => {
      const theirs = join(dir, 'theirs');
      mkdirSync(join(theirs, 'repo'), { recursive: true });
      chownSync(theirs, 65534, 65534);
      await expectRefused(theirs, /belongs to another user \(uid 65534\)/);
      // they could rename repo away and put a symlink to /etc in its place once it is registered
      await expectRefused(join(theirs, 'repo'), /above .* belongs to another user \(uid 65534\), who could replace the repository's directory/);
      await expectRefused(join(theirs, 'new'), /above .* belongs to another user/);
      const open = join(dir, 'open');
      mkdirSync(join(open, 'repo'), { recursive: true });
      chmodSync(open, 0o777);
      await expectRefused(open, /is writable by every user/);
      await expectRefused(join(open, 'repo'), /above .* is writable by every user, who could replace the repository's directory/);
    });

    it('registers a new directory with a marker, and the same repository again on a hub that lost its read models', async () => {
      const root = join(dir, 'repo');
      const registered = await register(root, 'fresh').expect(201);
      expect(JSON.parse(readFileSync(join(root, MARKER), 'utf8'))).toMatchObject({ repositoryId: registered.body.repositoryId, name: 'fresh' });
      await buildRepositoryChain(root, join(dir, 'staging'));
      writeFileSync(join(root, 'README'), 'a file the operator left\n');

      const other = await startTestHub({ SENDENSE_NBD_PORTS: '13310-13319' });
      try {
        const again = await other.admin(other.http().post('/api/v1/repositories')).send({ name: 'again', kind: 'local', path: root }).expect(201);
        const report = await other.admin(other.http().post(`/api/v1/repositories/${again.body.repositoryId}/rescan`)).expect(201);
        expect(report.body.added).toEqual(['rp-1', 'rp-2', 'rp-3', 'rp-4']);
      } finally {
        await other.close();
      }
      await hub.admin(hub.http().delete(`/api/v1/repositories/${registered.body.repositoryId}`)).expect(204);
    });
  });

  describe('the API serves no file by its path, and nothing writable', () => {
    let repo: string;
    let repositoryId: string;

    beforeEach(async () => {
      repo = join(dir, 'repo');
      await buildRepositoryChain(repo, join(dir, 'staging'));
      repositoryId = (await register(repo, 'main').expect(201)).body.repositoryId;
      await hub.admin(hub.http().post(`/api/v1/repositories/${repositoryId}/rescan`)).expect(201);
    });
    afterEach(async () => {
      for (const point of ['rp-4', 'rp-3', 'rp-2', 'rp-1']) await hub.admin(hub.http().delete(`/api/v1/restore-points/${point}`)).expect(200);
      await hub.admin(hub.http().delete(`/api/v1/repositories/${repositoryId}`)).expect(204);
    });

    it.each([
      ['a file placed inside a registered repository', 'inside'],
      ['a file outside every repository', 'outside'],
      ['a chain file of a restore point', 'chain'],
    ])('POST /nbd/exports of %s, raw and writable → 404: no qemu-nbd, no port, no event', async (_, where) => {
      const file = where === 'chain' ? join(repo, 'vm1', 'disk0', 'rp-4.qcow2') : join(where === 'inside' ? repo : dir, 'shadow');
      if (where !== 'chain') writeFileSync(file, 'root:$6$secret:19000:0:99999:7:::\n');
      const content = sha256(file);
      const before = await eventCount(hub.db);
      await hub.admin(hub.http().post('/api/v1/nbd/exports')).send({ jobId: 'attack', diskId: 'd0', file, format: 'raw', readOnly: false }).expect(404);
      await hub.admin(hub.http().delete('/api/v1/nbd/exports/6f1c1c44-1111-4e4e-9a9a-0123456789ab')).expect(404);
      expect(await eventCount(hub.db)).toBe(before);
      expect(await pidsMentioning(file)).toEqual([]);
      expect((await hub.admin(hub.http().get('/api/v1/nbd/ports')).expect(200)).body).toEqual([]);
      expect(sha256(file)).toBe(content);
    });

    it("a restore point's export serves its chain read-only: qemu-io cannot write through it", async () => {
      const file = join(repo, 'vm1', 'disk0', 'rp-4.qcow2');
      const content = sha256(file);
      const opened = await hub.admin(hub.http().post('/api/v1/restore-points/rp-4/exports')).send({ tls: false, diskIds: ['disk0'] }).expect(201);
      const [disk] = opened.body.disks;
      const output = await run('qemu-io', ['-f', 'raw', '-c', 'write -P 0xff 0 64k', `nbd://127.0.0.1:${disk.port}/${disk.exportName}`]).then(
        (r) => r.stdout + r.stderr,
        (e: { stdout: string; stderr: string }) => e.stdout + e.stderr,
      );
      expect(output).toMatch(/denied|read-only|read only|not permitted/i);
      expect(output).not.toMatch(/wrote 65536/);
      await hub.admin(hub.http().delete(`/api/v1/restore-point-exports/${opened.body.exportId}`)).expect(200);
      expect(sha256(file)).toBe(content);
    });
  });
});
