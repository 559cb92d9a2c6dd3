import { promises as fs } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { PassThrough, Readable } from 'node:stream';
import type { Response as SuperResponse } from 'superagent';
import { extractArchive } from '../../test/fixtures/restore/archive-extract';
import { hostLeftovers, NOTHING_LEFT } from '../../test/fixtures/restore/host-leftovers';
import { buildRestoreFixtures, removeRestoreFixtures, RestoreFixtures } from '../../test/fixtures/restore/restore-images';
import { buildRestoreRepository, RestoreRepository } from '../../test/fixtures/restore/restore-repository';
import { BLOB_SIZE, blobBytes, README_V1, README_V2, sha256, sha256File, TREE, treeManifest } from '../../test/fixtures/restore/source-tree';
import { processesMentioning } from '../../test/support/processes';
import { eventCount, startTestHub, TEST_ADMIN_TOKEN, TestHub } from '../../test/support/test-hub';
import { restoreCommand } from '../cli/commands/restore-cli';

/** supertest: collect the body as bytes whatever its content type. */
function binary(response: SuperResponse, callback: (error: Error | null, body: Buffer) => void): void {
  const res = response as unknown as NodeJS.ReadableStream;
  const chunks: Buffer[] = [];
  res.on('data', (chunk: Buffer) => chunks.push(chunk));
  res.on('end', () => callback(null, Buffer.concat(chunks)));
  res.on('error', (error: Error) => callback(error, Buffer.alloc(0)));
}

interface Volume {
  id: string;
  fsType: string | null;
  status: string;
  reason: string | null;
  label: string | null;
  size: number;
}

describe('file-level restore over the API (real hub, real images, real mounts)', () => {
  let fixtures: RestoreFixtures;
  let hub: TestHub;
  let scratch: string;
  let repo: RestoreRepository;
  let repositoryId: string;
  const repoHashes = new Map<string, string>();
  const mounts: Record<string, string> = {};
  /** The correlation id of the request that created each mount. */
  const stories: Record<string, string> = {};

  const post = (path: string) => hub.admin(hub.http().post(path));
  const get = (path: string) => hub.admin(hub.http().get(path));
  const del = (path: string) => hub.admin(hub.http().delete(path));
  const mount = (body: object) => post('/api/v1/restore/mounts').send(body);
  const files = (mountId: string, query: Record<string, string | number>) => get(`/api/v1/restore/mounts/${mountId}/files`).query(query);
  const file = (mountId: string, query: Record<string, string>) => get(`/api/v1/restore/mounts/${mountId}/file`).query(query).buffer(true).parse(binary);
  const archive = (mountId: string, query: Record<string, string>) => get(`/api/v1/restore/mounts/${mountId}/archive`).query(query).buffer(true).parse(binary);
  const workDir = (mountId: string) => join(hub.dataDir, 'restore', mountId);

  beforeAll(async () => {
    [fixtures, hub] = await Promise.all([buildRestoreFixtures(), startTestHub()]);
    scratch = await fs.mkdtemp(join(tmpdir(), 'sendense-restore-e2e-'));
    repo = await buildRestoreRepository(join(scratch, 'repository'), fixtures, { bigFileMiB: 48, brokenPoint: true });
    repositoryId = (await post('/api/v1/repositories').send({ name: 'restore', kind: 'local', path: repo.root }).expect(201)).body.repositoryId;
    const rescan = await post(`/api/v1/repositories/${repositoryId}/rescan`).expect(201);
    expect(rescan.body.added.sort()).toEqual(['big-1', 'broken-1', 'rp-1', 'rp-2', 'single-1']);
    // the repository's marker (.sendense-repository) is no VM directory
    for (const vm of (await fs.readdir(repo.root)).filter((name) => !name.startsWith('.'))) {
      for (const disk of await fs.readdir(join(repo.root, vm))) {
        if (disk === 'manifests') continue;
        for (const f of await fs.readdir(join(repo.root, vm, disk))) repoHashes.set(join(repo.root, vm, disk, f), await sha256File(join(repo.root, vm, disk, f)));
      }
    }
  }, 120_000);

  afterAll(async () => {
    const dataDir = hub?.dataDir;
    await hub?.close();
    // A graceful shutdown takes every mount down.
    if (dataDir) {
      expect(await hostLeftovers(join(dataDir, 'restore'))).toEqual(NOTHING_LEFT);
      expect(processesMentioning(dataDir)).toEqual([]);
    }
    if (scratch) await fs.rm(scratch, { recursive: true, force: true });
    await removeRestoreFixtures(fixtures);
  });

  it('refuses malformed or ambiguous mount requests with 400/404 and changes nothing', async () => {
    const before = await eventCount(hub.db);
    const cases: Array<[object, number, RegExp]> = [
      [{ restorePointId: 'rp-2' }, 400, /restore point rp-2 has 2 disks \(disk-gpt, disk-mbr\): choose one with diskId/],
      [{ restorePointId: 'rp-2', diskId: 'disk9' }, 404, /restore point rp-2 has no disk disk9; its disks: disk-gpt, disk-mbr/],
      [{ restorePointId: 'rp-404' }, 404, /restore point rp-404 does not exist/],
      [{ restorePointId: '../rp-1' }, 400, /restorePointId must be 1-128 characters/],
      [{ restorePointId: 'rp-1', diskId: 'disk/../x' }, 400, /diskId must be 1-128 characters/],
      [{ restorePointId: 'rp-1', readOnly: false }, 400, /property readOnly should not exist/],
      [{}, 400, /restorePointId must be/],
    ];
    for (const [body, status, message] of cases) {
      const res = await mount(body).expect(status);
      expect(JSON.stringify(res.body.message)).toMatch(message);
    }
    await get('/api/v1/restore/mounts/not-a-uuid').expect(400);
    await get('/api/v1/restore/mounts/7d3c4bd8-4b0e-4a8e-9d0e-1c1f0e3c2a11').expect(404);
    await del('/api/v1/restore/mounts/7d3c4bd8-4b0e-4a8e-9d0e-1c1f0e3c2a11').expect(404);
    await files('7d3c4bd8-4b0e-4a8e-9d0e-1c1f0e3c2a11', {}).expect(404);
    await get('/api/v1/restore/mounts?status=gone').expect(400);
    expect(await eventCount(hub.db)).toBe(before);
    expect(processesMentioning(hub.dataDir)).toEqual([]);
  });

  it('records a mount that fails (the image is not a qcow2) and answers 409 with the reason; nothing is left behind', async () => {
    const res = await mount({ restorePointId: repo.broken!.point }).expect(409);
    const mountId = /restore mount ([0-9a-f-]{36})/.exec(res.body.message)![1];
    expect(res.body.message).toMatch(/restore point broken-1 disk disk0 could not be mounted .*: .*qemu-nbd/i);
    const view = (await get(`/api/v1/restore/mounts/${mountId}`).expect(200)).body;
    expect(view).toMatchObject({ status: 'failed', error: expect.stringMatching(/qemu-nbd/i), volumes: [], expiresAt: null });
    const types = (await get(`/api/v1/audit/streams/restore-mount-${mountId}`).expect(200)).body.events.map((e: { type: string }) => e.type);
    expect(types).toEqual(['RestoreMountRequested', 'RestoreMountFailed']);
    expect(await hostLeftovers(workDir(mountId))).toEqual(NOTHING_LEFT);
    await files(mountId, {}).expect(409, /failed; mount the restore point again/);
    // Failed mounts hold nothing: the point can still be deleted (done last, below).
  });

  it('mounts the GPT disk of the incremental point (the chain reads through) and reports every volume', async () => {
    const res = await mount({ restorePointId: 'rp-2', diskId: 'disk-gpt' }).expect(201);
    mounts.gpt2 = res.body.mountId;
    stories.gpt2 = res.headers['x-correlation-id'];
    expect(res.body).toMatchObject({ mountId: expect.any(String), status: 'ready', restorePointId: 'rp-2', diskId: 'disk-gpt', vmId: 'vm-restore', repositoryId, partitionTable: 'gpt', requestedBy: 'admin', idleTimeoutSeconds: 3600 });
    expect(res.body.volumes.map((v: Volume) => [v.id, v.fsType, v.status])).toEqual([
      ['p1', 'ext4', 'mounted'],
      ['p2', 'xfs', 'mounted'],
      ['p3', 'vfat', 'mounted'],
      ['p4', null, 'unsupported'],
      ['p5', 'LVM2_member', 'unsupported'],
      ['p6', 'ext4', 'failed'],
    ]);
    expect(res.body.volumes[0]).toMatchObject({ label: 'root-ext4', size: 40 * 1024 * 1024, reason: null });
    expect(res.body.volumes[4].reason).toContain('device-mapper is not available on this host');
    expect(new Date(res.body.expiresAt).getTime() - new Date(res.body.lastAccessAt).getTime()).toBe(3600_000);
    expect((await get(`/api/v1/restore/mounts/${mounts.gpt2}`).expect(200)).body).toMatchObject({ mountId: mounts.gpt2, status: 'ready' });
    expect((await get('/api/v1/restore/mounts?status=ready').expect(200)).body.map((m: { mountId: string }) => m.mountId)).toContain(mounts.gpt2);
    expect((await get('/metrics').expect(200)).text).toMatch(/^sendense_restore_mounts_active 1$/m);

    const root = await files(mounts.gpt2, { volume: 'p1' }).expect(200);
    expect(root.body).toMatchObject({ mountId: mounts.gpt2, volume: 'p1', path: '', nextCursor: null });
    expect(root.body.entries.map((e: { name: string; type: string }) => [e.name, e.type])).toEqual([
      ['Data', 'dir'],
      ['Docs', 'dir'],
      ['Empty File.txt', 'file'],
      ['Links', 'dir'],
      ['Unicode ✓ Dir', 'dir'],
      ['lost+found', 'dir'],
    ]);
    const links = await files(mounts.gpt2, { volume: 'p2', path: 'Links' }).expect(200);
    expect(links.body.entries).toContainEqual(expect.objectContaining({ name: 'OutsideAbsolute', type: 'symlink', linkTarget: '/etc/passwd' }));
    const first = await files(mounts.gpt2, { volume: 'p2', path: 'Links', limit: 2 }).expect(200);
    const second = await files(mounts.gpt2, { volume: 'p2', path: 'Links', limit: 2, cursor: first.body.nextCursor }).expect(200);
    const third = await files(mounts.gpt2, { volume: 'p2', path: 'Links', limit: 2, cursor: second.body.nextCursor }).expect(200);
    expect([...first.body.entries, ...second.body.entries, ...third.body.entries].map((e: { name: string }) => e.name)).toEqual(links.body.entries.map((e: { name: string }) => e.name));
    expect(third.body.nextCursor).toBeNull();
    const vfat = await files(mounts.gpt2, { volume: 'p3', path: 'Unicode ✓ Dir' }).expect(200);
    expect(vfat.body.entries.map((e: { name: string }) => e.name)).toEqual(['Grüße aus Köln.txt']);
  });

  it('downloads files byte-exact, with Content-Length and Content-Disposition, from every filesystem', async () => {
    const readme = await file(mounts.gpt2, { volume: 'p1', path: TREE.readme }).expect(200);
    expect(readme.body.toString()).toBe(README_V2);
    expect(readme.headers['content-length']).toBe(String(Buffer.byteLength(README_V2)));
    expect(readme.headers['content-disposition']).toBe(`attachment; filename="ReadMe.txt"; filename*=UTF-8''ReadMe.txt`);
    expect(readme.headers['accept-ranges']).toBe('bytes');
    for (const volume of ['p1', 'p2', 'p3']) {
      const blob = await file(mounts.gpt2, { volume, path: TREE.blob }).expect(200);
      expect(blob.headers['content-length']).toBe(String(BLOB_SIZE));
      expect(sha256(blob.body)).toBe(sha256(blobBytes(BLOB_SIZE)));
    }
    const unicode = await file(mounts.gpt2, { volume: 'p2', path: TREE.unicode }).expect(200);
    expect(unicode.body.toString()).toBe('Grüße ✓\n');
    expect(unicode.headers['content-disposition']).toContain(`filename*=UTF-8''Gr%C3%BC%C3%9Fe%20aus%20K%C3%B6ln.txt`);
    const empty = await file(mounts.gpt2, { volume: 'p1', path: TREE.empty }).expect(200);
    expect(empty.headers['content-length']).toBe('0');
    expect(empty.body).toHaveLength(0);
    // Paths as the VM saw them: a leading "/" is the volume root.
    expect((await file(mounts.gpt2, { volume: 'p1', path: `/${TREE.readme}` }).expect(200)).body.toString()).toBe(README_V2);
    // A symlink inside the volume is followed.
    expect((await file(mounts.gpt2, { volume: 'p1', path: TREE.linkInside }).expect(200)).body.toString()).toBe(README_V2);
  });

  it('answers Range requests with 206 and exact bytes, and 416 for ranges the file does not have', async () => {
    const blob = blobBytes(BLOB_SIZE);
    const middle = await file(mounts.gpt2, { volume: 'p2', path: TREE.blob }).set('Range', 'bytes=1000000-1999999').expect(206);
    expect(middle.headers['content-range']).toBe(`bytes 1000000-1999999/${BLOB_SIZE}`);
    expect(middle.headers['content-length']).toBe('1000000');
    expect(middle.body.equals(blob.subarray(1_000_000, 2_000_000))).toBe(true);
    const tail = await file(mounts.gpt2, { volume: 'p2', path: TREE.blob }).set('Range', 'bytes=-345').expect(206);
    expect(tail.body.equals(blob.subarray(BLOB_SIZE - 345))).toBe(true);
    const open = await file(mounts.gpt2, { volume: 'p1', path: TREE.blob }).set('Range', `bytes=${BLOB_SIZE - 10}-`).expect(206);
    expect(open.body.equals(blob.subarray(BLOB_SIZE - 10))).toBe(true);
    for (const range of [`bytes=${BLOB_SIZE}-`, 'bytes=50-10', 'bytes=abc']) {
      const refused = await file(mounts.gpt2, { volume: 'p2', path: TREE.blob }).set('Range', range).expect(416);
      expect(refused.headers['content-range']).toBe(`bytes */${BLOB_SIZE}`);
    }
  });

  it('streams directories as tar.gz and zip whose contents equal the source tree', async () => {
    const tgz = await archive(mounts.gpt2, { volume: 'p1', path: 'Docs', format: 'tar.gz' }).expect(200);
    expect(tgz.headers['content-type']).toBe('application/gzip');
    expect(tgz.headers['content-disposition']).toBe(`attachment; filename="Docs.tar.gz"; filename*=UTF-8''Docs.tar.gz`);
    await extractArchive('tar.gz', Readable.from([tgz.body]), join(scratch, 'docs-tgz'));
    expect(await treeManifest(join(scratch, 'docs-tgz'))).toEqual(await treeManifest(join(fixtures.trees.v2, 'Docs')));

    const zip = await archive(mounts.gpt2, { volume: 'p2', format: 'zip' }).expect(200);
    expect(zip.headers['content-type']).toBe('application/zip');
    expect(zip.headers['content-disposition']).toContain('filename="volume.zip"');
    await extractArchive('zip', Readable.from([zip.body]), join(scratch, 'xfs-zip'));
    // The whole volume, escaping symlinks stored as links (never the host files they name).
    expect(await treeManifest(join(scratch, 'xfs-zip'))).toEqual(await treeManifest(fixtures.trees.v1));
  });

  it('refuses traversal, encoded and symlink escapes, bad volumes and non-files with clear 4xx answers, and records nothing', async () => {
    const before = await eventCount(hub.db);
    const refusals: Array<['files' | 'file' | 'archive', Record<string, string>, number, RegExp]> = [
      ['file', { volume: 'p1', path: '../../../../etc/passwd' }, 403, /path leaves the volume through "\.\."/],
      ['file', { volume: 'p1', path: 'Docs/../../p2/Data/Blob.bin' }, 403, /leaves the volume/],
      ['files', { volume: 'p1', path: '..' }, 403, /leaves the volume/],
      ['archive', { volume: 'p1', path: 'Docs/../..' }, 403, /leaves the volume/],
      ['file', { volume: 'p1', path: TREE.linkOutsideAbsolute }, 403, /leads out of the volume through a symlink/],
      ['file', { volume: 'p2', path: TREE.linkOutsideRelative }, 403, /symlink/],
      ['file', { volume: 'p1', path: TREE.linkDanglingOutside }, 403, /symlink/],
      ['files', { volume: 'p1', path: 'Links/OutsideAbsolute' }, 403, /symlink/],
      ['file', { volume: 'p1', path: '%2e%2e/%2e%2e/etc/passwd' }, 400, /percent-encoded/],
      ['file', { volume: 'p1', path: 'Docs%2f..%2f..%2fetc' }, 400, /percent-encoded/],
      // A leading "/" names the volume root, never the host's: the volume has no /etc/passwd.
      ['file', { volume: 'p1', path: '/etc/passwd' }, 404, /no such file or directory in this volume/],
      ['file', { volume: 'p1', path: '/../etc/passwd' }, 403, /leaves the volume/],
      ['file', { volume: 'p1', path: 'Docs/ReadMe.txt\0.jpg' }, 400, /NUL/],
      ['file', { volume: 'p1', path: 'Docs/Missing.txt' }, 404, /no such file or directory in this volume/],
      ['file', { volume: 'p1', path: 'Docs' }, 400, /use the archive endpoint/],
      ['file', { volume: 'p1', path: '' }, 400, /path must name a file/],
      ['files', { volume: 'p1', path: TREE.readme }, 400, /not a directory/],
      ['files', { path: '' }, 400, /has 3 browsable volumes \(p1 \(ext4, mounted\), p2 \(xfs, mounted\), p3 \(vfat, mounted\)\): choose one with volume=/],
      ['files', { volume: 'p9' }, 404, /has no volume p9; its volumes: p1 \(ext4, mounted\)/],
      ['files', { volume: 'p4' }, 409, /volume p4 .* cannot be browsed: unsupported \(no filesystem signature was recognised\)/],
      ['files', { volume: 'p1; rm -rf /' }, 400, /volume must be a volume id/],
      ['files', { volume: 'p1', limit: '0' }, 400, /limit must not be less than 1/],
      ['files', { volume: 'p1', limit: 'ten' }, 400, /limit must be an integer/],
      ['files', { volume: 'p1', unknown: 'x' }, 400, /property unknown should not exist/],
      ['archive', { volume: 'p1', format: 'rar' }, 400, /format must be one of/],
      ['archive', { volume: 'p1', path: TREE.readme }, 400, /not a directory/],
    ];
    for (const [endpoint, query, status, message] of refusals) {
      const req = endpoint === 'files' ? files(mounts.gpt2, query) : endpoint === 'file' ? file(mounts.gpt2, query) : archive(mounts.gpt2, query);
      const res = await req;
      const body = Buffer.isBuffer(res.body) ? JSON.parse(res.body.toString() || '{}') : res.body;
      expect([endpoint, query, res.status]).toEqual([endpoint, query, status]);
      const text = Array.isArray(body.message) ? body.message.join('; ') : String(body.message);
      expect([endpoint, query, text]).toEqual([endpoint, query, expect.stringMatching(message)]);
    }
    // Sent raw: the HTTP layer decodes once, so the volume sees "../../etc/passwd".
    const raw = await hub.admin(hub.http().get(`/api/v1/restore/mounts/${mounts.gpt2}/file?volume=p1&path=..%2F..%2Fetc%2Fpasswd`)).expect(403);
    expect(raw.body.code).toBe('PATH_ESCAPES_VOLUME');
    expect(await eventCount(hub.db)).toBe(before);
  });

  it('mounts the GPT full point, and the MBR disk at both points: each shows its own content', async () => {
    const gpt1 = (await mount({ restorePointId: 'rp-1', diskId: 'disk-gpt' }).expect(201)).body;
    const mbr1 = (await mount({ restorePointId: 'rp-1', diskId: 'disk-mbr' }).expect(201)).body;
    const mbr2 = (await mount({ restorePointId: 'rp-2', diskId: 'disk-mbr' }).expect(201)).body;
    mounts.gpt1 = gpt1.mountId;
    mounts.mbr1 = mbr1.mountId;
    mounts.mbr2 = mbr2.mountId;
    expect((await file(gpt1.mountId, { volume: 'p1', path: TREE.readme }).expect(200)).body.toString()).toBe(README_V1);
    for (const m of [mbr1, mbr2]) {
      expect(m).toMatchObject({ status: 'ready', partitionTable: 'dos' });
      expect(m.volumes.map((v: Volume) => [v.id, v.fsType, v.status])).toEqual([
        ['p1', 'vfat', 'mounted'],
        ['p2', 'ext4', 'mounted'],
        ['p5', 'ntfs', 'mounted'],
        ['p6', 'xfs', 'mounted'],
      ]);
    }
    expect((await file(mbr1.mountId, { volume: 'p2', path: TREE.readme }).expect(200)).body.toString()).toBe(README_V1);
    expect((await file(mbr2.mountId, { volume: 'p2', path: TREE.readme }).expect(200)).body.toString()).toBe(README_V2);
    for (const volume of ['p1', 'p5', 'p6']) {
      expect(sha256((await file(mbr2.mountId, { volume, path: TREE.blob }).expect(200)).body)).toBe(sha256(blobBytes(BLOB_SIZE)));
    }
    const ntfs = await archive(mbr2.mountId, { volume: 'p5', path: 'Docs', format: 'zip' }).expect(200);
    await extractArchive('zip', Readable.from([ntfs.body]), join(scratch, 'ntfs-zip'));
    expect(await treeManifest(join(scratch, 'ntfs-zip'))).toEqual(await treeManifest(join(fixtures.trees.v1, 'Docs')));
  });

  it('refuses to delete a restore point while a mount reads it or reads through it (409)', async () => {
    const before = await eventCount(hub.db);
    // rp-2 is mounted; rp-1 is its backing file (and mounted itself).
    for (const point of ['rp-2', 'rp-1']) {
      const res = await del(`/api/v1/restore-points/${point}`).expect(409);
      expect(res.body.message).toMatch(new RegExp(`restore point ${point} or a point above it is in use: .*restore mount`));
    }
    expect(await eventCount(hub.db)).toBe(before);
    expect((await get('/api/v1/vms/vm-restore/restore-points').expect(200)).body.map((p: { restorePointId: string }) => p.restorePointId)).toEqual(['rp-1', 'rp-2']);
  });

  it('records every download with its bytes and the actor, in the audit stream', async () => {
    const token = (await post('/api/v1/tokens').send({ name: 'alice' }).expect(201)).body.token as string;
    const asAlice = (req: ReturnType<ReturnType<TestHub['http']>['get']>) => req.set('Authorization', `Bearer ${token}`);
    const full = await asAlice(hub.http().get(`/api/v1/restore/mounts/${mounts.mbr2}/file`).query({ volume: 'p6', path: TREE.blob }).buffer(true).parse(binary)).expect(200);
    expect(full.body).toHaveLength(BLOB_SIZE);
    await asAlice(hub.http().get(`/api/v1/restore/mounts/${mounts.mbr2}/file`).query({ volume: 'p6', path: TREE.blob }).set('Range', 'bytes=10-19').buffer(true).parse(binary)).expect(206);
    await asAlice(hub.http().get(`/api/v1/restore/mounts/${mounts.mbr2}/archive`).query({ volume: 'p6', path: 'Docs' }).buffer(true).parse(binary)).expect(200);

    // A download is recorded once its last byte has left, which can be just after the client has it all.
    const audit = await auditUntil(mounts.mbr2, (events) => events.filter((e) => e.metadata.actor === 'alice').length === 3);
    expect(audit[0]).toMatchObject({ type: 'RestoreMountRequested', data: { restorePointId: 'rp-2', diskId: 'disk-mbr', file: repo.file('vm-restore', 'disk-mbr', 'rp-2') }, metadata: { actor: 'admin' } });
    expect(audit[0].data.chainFiles).toEqual([repo.file('vm-restore', 'disk-mbr', 'rp-2'), repo.file('vm-restore', 'disk-mbr', 'rp-1')]);
    expect(audit[1]).toMatchObject({ type: 'RestoreMountReady' });
    const byAlice = audit.filter((e) => e.metadata.actor === 'alice');
    expect(byAlice.map((e) => [e.type, e.data.path, e.data.bytes, e.data.actor])).toEqual([
      ['RestoreFileDownloaded', TREE.blob, BLOB_SIZE, 'alice'],
      ['RestoreFileDownloaded', TREE.blob, 10, 'alice'],
      ['RestoreArchiveDownloaded', 'Docs', expect.any(Number), 'alice'],
    ]);
    expect(byAlice[0].data).toMatchObject({ mountId: mounts.mbr2, volume: 'p6', range: null, complete: true });
    expect(byAlice[1].data).toMatchObject({ range: 'bytes=10-19', complete: true });
    expect(byAlice[2].data).toMatchObject({ format: 'tar.gz', complete: true });
    expect(audit.filter((e) => e.type === 'RestoreFileDownloaded' && e.metadata.actor === 'admin').map((e) => e.data.path)).toEqual([TREE.readme, TREE.blob, TREE.blob, TREE.blob]);

    let view = (await get(`/api/v1/restore/mounts/${mounts.mbr2}`).expect(200)).body;
    for (const deadline = Date.now() + 5000; view.downloads.archives < 2 && Date.now() < deadline; ) view = (await get(`/api/v1/restore/mounts/${mounts.mbr2}`).expect(200)).body;
    expect(view.downloads).toEqual({ files: 6, archives: 2, bytes: expect.any(Number) });
    expect(view.downloads.bytes).toBeGreaterThan(4 * BLOB_SIZE);
  });

  type AuditEvent = { type: string; data: Record<string, unknown>; metadata: Record<string, unknown> };
  async function auditUntil(mountId: string, done: (events: AuditEvent[]) => boolean): Promise<AuditEvent[]> {
    const deadline = Date.now() + 10_000;
    for (;;) {
      const events = (await get(`/api/v1/audit/streams/restore-mount-${mountId}`).expect(200)).body.events as AuditEvent[];
      if (done(events) || Date.now() > deadline) return events;
      await new Promise((r) => setTimeout(r, 20));
    }
  }

  /** Starts a download of the big file and reads only its first chunk; the rest stays unsent (48 MiB exceeds any socket buffer). */
  async function stalledDownload(mountId: string): Promise<{ abort(): void; firstChunk: number }> {
    const controller = new AbortController();
    const res = await fetch(`${await hub.url()}/api/v1/restore/mounts/${mountId}/file?path=${encodeURIComponent(repo.big!.path)}`, {
      headers: { Authorization: `Bearer ${TEST_ADMIN_TOKEN}` },
      signal: controller.signal,
    });
    expect(res.status).toBe(200);
    expect(res.headers.get('content-length')).toBe(String(repo.big!.size));
    const first = await res.body!.getReader().read();
    return { abort: () => controller.abort(), firstChunk: first.value?.length ?? 0 };
  }

  it('a download link fetches a file once, without a token, as the token that asked for it; a viewer\'s link is refused when used', async () => {
    const bob = (await post('/api/v1/tokens').send({ name: 'bob', role: 'operator' }).expect(201)).body.token as string;
    const target = `/api/v1/restore/mounts/${mounts.mbr2}/file?volume=p6&path=${encodeURIComponent(TREE.blob)}`;
    const link = await hub.http().post('/api/v1/download-links').set('Authorization', `Bearer ${bob}`).send({ path: target }).expect(201);
    expect(link.body).toEqual({ url: expect.stringMatching(/^\/api\/v1\/download-links\/[A-Za-z0-9_-]{43}$/), expiresAt: expect.any(String) });
    const direct = await get(target).buffer(true).parse(binary).expect(200);
    const viaLink = await hub.http().get(link.body.url).buffer(true).parse(binary).expect(200);
    expect(viaLink.headers['content-disposition']).toContain('attachment');
    expect(sha256(viaLink.body)).toBe(sha256(direct.body));
    expect((await hub.http().get(link.body.url).expect(404)).body.message).toMatch(/unknown, already used or expired/);
    const audit = await auditUntil(mounts.mbr2, (events) => events.some((e) => e.metadata.actor === 'bob'));
    expect(audit.filter((e) => e.metadata.actor === 'bob').map((e) => [e.type, e.data.path])).toEqual([['RestoreFileDownloaded', TREE.blob]]);

    for (const path of ['/api/v1/tokens', `/api/v1/restore/mounts/${mounts.mbr2}/files`, 'https://elsewhere.example/x', `/api/v1/restore/mounts/${mounts.mbr2}/file#x`]) {
      const refused = await post('/api/v1/download-links').send({ path }).expect(400);
      expect(refused.body.message).toEqual([expect.stringMatching(/^path must be a download of this API/)]);
    }
    const viewer = (await post('/api/v1/tokens').send({ name: 'vera', role: 'viewer' }).expect(201)).body.token as string;
    const viewerLink = await hub.http().post('/api/v1/download-links').set('Authorization', `Bearer ${viewer}`).send({ path: target }).expect(201);
    await hub.http().get(viewerLink.body.url).expect(403);
  });

  it('downloads a 48 MiB file whole, and records only the bytes actually sent when the client goes away', async () => {
    const big = (await mount({ restorePointId: repo.big!.point }).expect(201)).body;
    mounts.big = big.mountId;
    const whole = await file(big.mountId, { path: repo.big!.path }).expect(200);
    expect(whole.body).toHaveLength(repo.big!.size);
    expect(sha256(whole.body)).toBe(repo.big!.sha256);

    const stalled = await stalledDownload(big.mountId);
    expect(stalled.firstChunk).toBeGreaterThan(0);
    await new Promise((r) => setTimeout(r, 200));
    stalled.abort();
    const events = async () => (await get(`/api/v1/audit/streams/restore-mount-${big.mountId}`).expect(200)).body.events.filter((e: { type: string }) => e.type === 'RestoreFileDownloaded');
    const deadline = Date.now() + 10_000;
    while ((await events()).length < 2 && Date.now() < deadline) await new Promise((r) => setTimeout(r, 50));
    const [complete, cut] = (await events()).map((e: { data: unknown }) => e.data);
    expect(complete).toMatchObject({ bytes: repo.big!.size, complete: true });
    expect(cut).toMatchObject({ complete: false, path: 'big.bin' });
    expect(cut.bytes).toBeGreaterThanOrEqual(stalled.firstChunk);
    expect(cut.bytes).toBeLessThan(repo.big!.size);
  });

  it('a DELETE during a download cuts the download off at once and takes the mount down', async () => {
    const stalled = await stalledDownload(mounts.big);
    const started = Date.now();
    const res = await del(`/api/v1/restore/mounts/${mounts.big}`).expect(200);
    expect(Date.now() - started).toBeLessThan(5_000);
    expect(res.body).toMatchObject({ status: 'released', releaseReason: 'requested' });
    stalled.abort();
    expect(await hostLeftovers(workDir(mounts.big))).toEqual(NOTHING_LEFT);
    const events = await auditUntil(mounts.big, (all) => all.filter((e) => e.type === 'RestoreFileDownloaded').length === 3);
    expect(events.map((e) => e.type).slice(-2).sort()).toEqual(['RestoreFileDownloaded', 'RestoreMountReleased']);
    expect(events.filter((e) => e.type === 'RestoreFileDownloaded').at(-1)!.data).toMatchObject({ complete: false });
  });

  it('serves a single-disk point without naming disk or volume, and refuses device nodes and FIFOs', async () => {
    const single = (await mount({ restorePointId: 'single-1' }).expect(201)).body;
    mounts.single = single.mountId;
    expect(single).toMatchObject({ diskId: 'disk0', partitionTable: 'none', volumes: [expect.objectContaining({ id: 'disk', fsType: 'ext4', status: 'mounted' })] });
    expect((await files(single.mountId, {}).expect(200)).body.entries.map((e: { name: string }) => e.name)).toContain('Dev');
    expect((await file(single.mountId, { path: TREE.readme }).expect(200)).body.toString()).toBe(README_V1);
    for (const path of ['Dev/zero', 'Dev/fifo']) {
      const res = await file(single.mountId, { path }).expect(400);
      expect(JSON.parse(res.body.toString()).message).toMatch(/not a regular file/);
    }
  });

  it('works from the CLI: mount, ls, get and unmount', async () => {
    const env = { SENDENSE_HUB: await hub.url(), SENDENSE_DATA_DIR: join(scratch, 'cli-data') };
    await fs.mkdir(env.SENDENSE_DATA_DIR, { recursive: true });
    await fs.writeFile(join(env.SENDENSE_DATA_DIR, 'admin.token'), `${TEST_ADMIN_TOKEN}\n`);
    const run = async (...args: string[]) => {
      const stdout = new PassThrough();
      const stderr = new PassThrough();
      let out = '';
      let err = '';
      stdout.on('data', (d) => (out += d));
      stderr.on('data', (d) => (err += d));
      const code = await restoreCommand(['restore', ...args], env, { stdout, stderr, cwd: scratch });
      return { code, out, err };
    };

    const mounted = await run('mount', 'rp-2', '--disk', 'disk-gpt');
    expect(mounted).toMatchObject({ code: 0, err: '' });
    const mountId = /^mount ([0-9a-f-]{36}): ready/.exec(mounted.out)![1];
    expect(mounted.out).toMatch(/p1\s+ext4\s+40\.0 MiB\s+mounted "root-ext4"/);
    expect(mounted.out).toMatch(/p5\s+LVM2_member .* unsupported: .*device-mapper/);

    const ls = await run('ls', mountId, 'Links', '--volume', 'p1');
    expect(ls.code).toBe(0);
    expect(ls.out).toMatch(/^l 0777 +\d+ [\d-]+ [\d:]+ OutsideAbsolute -> \/etc\/passwd$/m);
    const root = await run('ls', mountId, '--volume=p2');
    expect(root.out).toMatch(/^d .* Docs\/$/m);

    const got = await run('get', mountId, TREE.unicode, '--volume', 'p2');
    expect(got).toMatchObject({ code: 0, out: '' });
    expect(await fs.readFile(join(scratch, 'Grüße aus Köln.txt'), 'utf8')).toBe('Grüße ✓\n');
    expect((await run('get', mountId, TREE.unicode, '--volume', 'p2')).err).toMatch(/already exists; choose another name with -o FILE/);
    await run('get', mountId, TREE.blob, '--volume', 'p1', '-o', join(scratch, 'blob.bin'));
    expect(await sha256File(join(scratch, 'blob.bin'))).toBe(sha256(blobBytes(BLOB_SIZE)));

    const escape = await run('get', mountId, TREE.linkOutsideAbsolute, '--volume', 'p1');
    expect(escape).toMatchObject({ code: 1, err: expect.stringMatching(/^sendense restore: 403 path leads out of the volume through a symlink/) });
    expect((await run('ls', mountId)).err).toMatch(/400 restore mount .* has 3 browsable volumes/);
    expect((await run('frobnicate')).code).toBe(2);
    expect((await run('mount')).code).toBe(2);

    expect(await run('unmount', mountId)).toMatchObject({ code: 0, out: `mount ${mountId}: released (requested)\n` });
    expect(await hostLeftovers(workDir(mountId))).toEqual(NOTHING_LEFT);
    expect((await run('ls', mountId, '--volume', 'p1')).err).toMatch(/409 restore mount .* was released \(requested\)/);
    expect((await run('mount', 'rp-404')).err).toMatch(/404 restore point rp-404 does not exist/);
    expect((await restoreCommand(['ls', mountId], { SENDENSE_HUB: env.SENDENSE_HUB, SENDENSE_DATA_DIR: join(scratch, 'nowhere') }, { stdout: new PassThrough(), stderr: new PassThrough(), cwd: scratch }))).toBe(1);
  });

  it('DELETE takes the mount down completely (no mount, FUSE server, loop device or qemu-nbd left), and is idempotent', async () => {
    for (const key of ['gpt2', 'gpt1', 'mbr1', 'mbr2', 'single']) {
      const id = mounts[key];
      const res = await del(`/api/v1/restore/mounts/${id}`).expect(200);
      expect(res.body).toMatchObject({ mountId: id, status: 'released', releaseReason: 'requested', expiresAt: null });
      expect(await hostLeftovers(workDir(id))).toEqual(NOTHING_LEFT);
    }
    // One mount is one audit story: its request, readiness and release, whoever released it.
    const story = (await get(`/api/v1/audit/correlations/${stories.gpt2}`).expect(200)).body.events as Array<{ eventId: string; streamId: string; type: string; metadata: Record<string, unknown> }>;
    expect(story.map((e) => [e.streamId, e.type])).toEqual([
      [`restore-mount-${mounts.gpt2}`, 'RestoreMountRequested'],
      [`restore-mount-${mounts.gpt2}`, 'RestoreMountReady'],
      [`restore-mount-${mounts.gpt2}`, 'RestoreMountReleased'],
    ]);
    expect(story[1].metadata.causationId).toBe(story[0].eventId);
    expect(story[2].metadata).toMatchObject({ actor: 'admin', causationId: story[2].metadata.commandId });
    const before = await eventCount(hub.db);
    await del(`/api/v1/restore/mounts/${mounts.gpt2}`).expect(200);
    const gone = await files(mounts.gpt2, { volume: 'p1' }).expect(409);
    expect(gone.body.message).toMatch(/was released \(requested\); mount the restore point again/);
    expect(await eventCount(hub.db)).toBe(before);
    expect(await hostLeftovers(join(hub.dataDir, 'restore'))).toEqual({ ...NOTHING_LEFT, dirExists: true });
    expect(processesMentioning(hub.dataDir)).toEqual([]);

    // Nothing holds the points any more, and the mounts never wrote to them.
    for (const [path, hash] of repoHashes) expect([path, await sha256File(path)]).toEqual([path, hash]);
    await del('/api/v1/restore-points/rp-2').expect(200);
    await del(`/api/v1/restore-points/${repo.broken!.point}`).expect(200);
  });

  it('rebuilding the read model from the events gives the same rows', async () => {
    const before = (await get('/api/v1/restore/mounts').expect(200)).body;
    await post('/api/v1/projections/restore-mounts/rebuild').expect(202);
    const deadline = Date.now() + 10_000;
    let after: unknown[] = [];
    while (Date.now() < deadline) {
      after = (await get('/api/v1/restore/mounts').expect(200)).body;
      if (JSON.stringify(after) === JSON.stringify(before)) break;
      await new Promise((r) => setTimeout(r, 50));
    }
    expect(after).toEqual(before);
  });
});
