import { randomUUID } from 'node:crypto';
import { promises as fs } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { PassThrough } from 'node:stream';
import type { Response as SuperResponse } from 'superagent';
import { hostLeftovers, NOTHING_LEFT } from '../../test/fixtures/restore/host-leftovers';
import { buildRestoreFixtures, removeRestoreFixtures, RestoreFixtures } from '../../test/fixtures/restore/restore-images';
import { buildRestoreRepository, RestoreRepository } from '../../test/fixtures/restore/restore-repository';
import { BLOB_SIZE, blobBytes, README_V1, README_V2, sha256, TREE } from '../../test/fixtures/restore/source-tree';
import { processesMentioning } from '../../test/support/processes';
import { startTestHub, TEST_ADMIN_TOKEN, TestHub } from '../../test/support/test-hub';
import { metadataFor } from '../eventing/event-metadata';
import { chainStream, RESTORE_POINT_CORRUPTED, RESTORE_POINT_VERIFIED } from '../restore-points/chain.events';
import { restoreCommand } from '../cli/commands/restore-cli';

/** supertest: collect the body as bytes whatever its content type. */
function binary(response: SuperResponse, callback: (error: Error | null, body: Buffer) => void): void {
  const res = response as unknown as NodeJS.ReadableStream;
  const chunks: Buffer[] = [];
  res.on('data', (chunk: Buffer) => chunks.push(chunk));
  res.on('end', () => callback(null, Buffer.concat(chunks)));
  res.on('error', (error: Error) => callback(error, Buffer.alloc(0)));
}

const RED = '\x1b[31m';
/** One damaged block in the GPT disk of the full point rp-1, which the incremental rp-2 reads through. */
const DAMAGE = {
  restorePointId: 'rp-1',
  diskId: 'disk-gpt',
  offset: 1048576,
  length: 65536,
  expected: 'sha256:1111111111111111111111111111111111111111111111111111111111111111',
  actual: 'sha256:2222222222222222222222222222222222222222222222222222222222222222',
  readsThrough: ['rp-2'],
};
const VERIFIED_AT = '2026-02-03T04:05:06.000Z';

/**
 * A restore mount tells what a verify found about its restore point: on the mount, on every
 * download (headers and events) and in the CLI. The verify's events are appended to the chain
 * as the verify records them (the verify itself is tested with the restore points).
 */
describe('restore mounts carry the integrity of their restore point (real hub, real images, real mounts)', () => {
  let fixtures: RestoreFixtures;
  let hub: TestHub;
  let scratch: string;
  let repo: RestoreRepository;
  let repositoryId: string;
  const mounts: Record<string, string> = {};

  const post = (path: string) => hub.admin(hub.http().post(path));
  const get = (path: string) => hub.admin(hub.http().get(path));
  const mount = (body: object) => post('/api/v1/restore/mounts').send(body);
  const file = (mountId: string, query: Record<string, string>) => get(`/api/v1/restore/mounts/${mountId}/file`).query(query).buffer(true).parse(binary);
  const archive = (mountId: string, query: Record<string, string>) => get(`/api/v1/restore/mounts/${mountId}/archive`).query(query).buffer(true).parse(binary);
  const record = (vmId: string, type: string, data: Record<string, unknown>) =>
    hub.db.store.append(chainStream(vmId, repositoryId), [{ type, data, metadata: metadataFor(randomUUID()) }]);

  type AuditEvent = { type: string; data: Record<string, unknown> };
  async function downloadsOf(mountId: string, count: number): Promise<AuditEvent[]> {
    const deadline = Date.now() + 10_000;
    for (;;) {
      const events = ((await get(`/api/v1/audit/streams/restore-mount-${mountId}`).expect(200)).body.events as AuditEvent[]).filter((e) => e.type.endsWith('Downloaded'));
      if (events.length >= count || Date.now() > deadline) return events;
      await new Promise((r) => setTimeout(r, 20));
    }
  }

  async function cli(env: Record<string, string>, ...args: string[]): Promise<{ code: number; out: string; err: string }> {
    const hubUrl = await hub.url();
    const dataDir = join(scratch, 'cli-data');
    await fs.mkdir(dataDir, { recursive: true });
    await fs.writeFile(join(dataDir, 'admin.token'), `${TEST_ADMIN_TOKEN}\n`);
    const stdout = new PassThrough();
    const stderr = new PassThrough();
    let out = '';
    let err = '';
    stdout.on('data', (d) => (out += d));
    stderr.on('data', (d) => (err += d));
    const code = await restoreCommand(['restore', ...args], { SENDENSE_HUB: hubUrl, SENDENSE_DATA_DIR: dataDir, ...env }, { stdout, stderr, cwd: scratch });
    return { code, out, err };
  }

  beforeAll(async () => {
    [fixtures, hub] = await Promise.all([buildRestoreFixtures(), startTestHub()]);
    scratch = await fs.mkdtemp(join(tmpdir(), 'sendense-restore-integrity-'));
    repo = await buildRestoreRepository(join(scratch, 'repository'), fixtures);
    repositoryId = (await post('/api/v1/repositories').send({ name: 'restore', kind: 'local', path: repo.root }).expect(201)).body.repositoryId;
    expect((await post(`/api/v1/repositories/${repositoryId}/rescan`).expect(201)).body.added.sort()).toEqual(['rp-1', 'rp-2', 'single-1']);
  }, 120_000);

  afterAll(async () => {
    const dataDir = hub?.dataDir;
    await hub?.close();
    if (dataDir) {
      expect(await hostLeftovers(join(dataDir, 'restore'))).toEqual(NOTHING_LEFT);
      expect(processesMentioning(dataDir)).toEqual([]);
    }
    if (scratch) await fs.rm(scratch, { recursive: true, force: true });
    await removeRestoreFixtures(fixtures);
  });

  it('a point no verify spoke about is mounted "unverified", and its downloads say so; the CLI prints it plainly', async () => {
    const res = await mount({ restorePointId: 'rp-2', diskId: 'disk-gpt' }).expect(201);
    mounts.gpt2 = res.body.mountId;
    expect(res.body).toMatchObject({ status: 'ready', integrity: 'unverified', verifiedAt: null, damaged: [], integrityProblems: [] });

    const readme = await file(mounts.gpt2, { volume: 'p1', path: TREE.readme }).expect(200);
    expect(readme.body.toString()).toBe(README_V2);
    expect(readme.headers['x-sendense-integrity']).toBe('unverified');
    expect(readme.headers['x-sendense-damaged-ranges']).toBeUndefined();
    expect((await downloadsOf(mounts.gpt2, 1)).map((e) => e.data)).toEqual([expect.objectContaining({ path: TREE.readme, complete: true, integrity: 'unverified' })]);

    const mounted = await cli({ FORCE_COLOR: '1' }, 'mount', 'rp-1', '--disk', 'disk-mbr');
    expect(mounted).toMatchObject({ code: 0, err: '' });
    mounts.mbr1 = /^mount ([0-9a-f-]{36}): ready/.exec(mounted.out)![1];
    expect(mounted.out).toContain('\nintegrity: unverified (no verify has read this restore point back yet)\n');
    expect(mounted.out).not.toContain('\x1b[');
  });

  it('a verified point is mounted "verified" with the time of its verify, and every download carries it', async () => {
    await record('vm-single', RESTORE_POINT_VERIFIED, { restorePointId: 'single-1', ok: true, problems: [], warnings: [], verifiedAt: VERIFIED_AT });
    const res = await mount({ restorePointId: 'single-1' }).expect(201);
    mounts.single = res.body.mountId;
    expect(res.body).toMatchObject({ integrity: 'verified', verifiedAt: VERIFIED_AT, damaged: [], integrityProblems: [] });

    const readme = await file(mounts.single, { path: TREE.readme }).expect(200);
    expect(readme.body.toString()).toBe(README_V1);
    expect(readme.headers).toMatchObject({ 'x-sendense-integrity': 'verified', 'x-sendense-verified-at': VERIFIED_AT });
    const tgz = await archive(mounts.single, { path: 'Docs' }).expect(200);
    expect(tgz.headers).toMatchObject({ 'x-sendense-integrity': 'verified', 'x-sendense-verified-at': VERIFIED_AT });
    expect((await downloadsOf(mounts.single, 2)).map((e) => [e.type, e.data.integrity])).toEqual([
      ['RestoreFileDownloaded', 'verified'],
      ['RestoreArchiveDownloaded', 'verified'],
    ]);

    const shown = await cli({}, 'ls', mounts.single);
    expect(shown.code).toBe(0);
    expect(shown.err).toBe(`integrity: verified at ${VERIFIED_AT}\n`);
    expect(shown.out).toMatch(/^d .* Docs\/$/m);
  });

  it('a point found corrupt after it was mounted shows corrupt on the next GET, and on every download, which is still served', async () => {
    await record('vm-restore', RESTORE_POINT_CORRUPTED, DAMAGE);
    const range = { diskId: 'disk-gpt', offset: DAMAGE.offset, length: DAMAGE.length, expected: DAMAGE.expected, actual: DAMAGE.actual, inPointId: 'rp-1' };

    // No waiting: the answer is current when asked.
    const view = (await get(`/api/v1/restore/mounts/${mounts.gpt2}`).expect(200)).body;
    expect(view).toMatchObject({ status: 'ready', restorePointId: 'rp-2', integrity: 'corrupt', verifiedAt: null, damaged: [range], integrityProblems: [] });

    // The operator may need these files: they are served, byte-exact, with the state on them.
    const blob = await file(mounts.gpt2, { volume: 'p2', path: TREE.blob }).expect(200);
    expect(sha256(blob.body)).toBe(sha256(blobBytes(BLOB_SIZE)));
    expect(blob.headers).toMatchObject({ 'x-sendense-integrity': 'corrupt', 'x-sendense-damaged-ranges': '1', 'x-sendense-damaged-in': 'rp-1' });
    const part = await file(mounts.gpt2, { volume: 'p2', path: TREE.blob }).set('Range', 'bytes=10-19').expect(206);
    expect(part.headers['x-sendense-integrity']).toBe('corrupt');
    const zip = await archive(mounts.gpt2, { volume: 'p1', path: 'Docs', format: 'zip' }).expect(200);
    expect(zip.headers).toMatchObject({ 'x-sendense-integrity': 'corrupt', 'x-sendense-damaged-ranges': '1', 'x-sendense-damaged-in': 'rp-1' });
    expect((await downloadsOf(mounts.gpt2, 4)).map((e) => [e.type, e.data.path, e.data.complete, e.data.integrity])).toEqual([
      ['RestoreFileDownloaded', TREE.readme, true, 'unverified'],
      ['RestoreFileDownloaded', TREE.blob, true, 'corrupt'],
      ['RestoreFileDownloaded', TREE.blob, true, 'corrupt'],
      ['RestoreArchiveDownloaded', 'Docs', true, 'corrupt'],
    ]);

    // The point's other disk is corrupt too (the point is), with no damaged block of its own: the answer says where the damage is.
    const mbr1 = (await get(`/api/v1/restore/mounts/${mounts.mbr1}`).expect(200)).body;
    expect(mbr1).toMatchObject({ integrity: 'corrupt', damaged: [], integrityProblems: ['disk disk-gpt of the restore point has 1 damaged block (in rp-1)'] });
    // Corruption in one VM's chain says nothing about another's.
    expect((await get(`/api/v1/restore/mounts/${mounts.single}`).expect(200)).body).toMatchObject({ integrity: 'verified', verifiedAt: VERIFIED_AT });
    expect((await get('/api/v1/restore/mounts?status=ready').expect(200)).body.map((m: { mountId: string; integrity: string }) => [m.mountId, m.integrity]).sort()).toEqual(
      [
        [mounts.gpt2, 'corrupt'],
        [mounts.mbr1, 'corrupt'],
        [mounts.single, 'verified'],
      ].sort(),
    );
  });

  it('a new mount of the corrupt point says so in its answer, with the damaged ranges', async () => {
    const res = await mount({ restorePointId: 'rp-1', diskId: 'disk-gpt' }).expect(201);
    mounts.gpt1 = res.body.mountId;
    expect(res.body).toMatchObject({ status: 'ready', integrity: 'corrupt', damaged: [{ diskId: 'disk-gpt', offset: DAMAGE.offset, length: DAMAGE.length, expected: DAMAGE.expected, actual: DAMAGE.actual, inPointId: 'rp-1' }] });
    const readme = await file(mounts.gpt1, { volume: 'p1', path: TREE.readme }).expect(200);
    expect(readme.body.toString()).toBe(README_V1);
    expect(readme.headers['x-sendense-integrity']).toBe('corrupt');
    // A later verify cannot make a corrupt point whole again.
    await record('vm-restore', RESTORE_POINT_VERIFIED, { restorePointId: 'rp-1', ok: true, problems: [], warnings: [], verifiedAt: VERIFIED_AT });
    expect((await get(`/api/v1/restore/mounts/${mounts.gpt1}`).expect(200)).body).toMatchObject({ integrity: 'corrupt', verifiedAt: VERIFIED_AT, damaged: [expect.objectContaining({ inPointId: 'rp-1' })] });
  });

  it('the CLI prints a corrupt point in red with its damaged blocks (FORCE_COLOR=1), and without colour when output is not a terminal', async () => {
    const mounted = await cli({ FORCE_COLOR: '1' }, 'mount', 'rp-2', '--disk', 'disk-gpt');
    expect(mounted).toMatchObject({ code: 0, err: '' });
    expect(mounted.out).toMatch(/^mount [0-9a-f-]{36}: ready \(restore point rp-2, disk disk-gpt, gpt partition table\)\n/);
    expect(mounted.out).toContain(
      `${RED}integrity: CORRUPT: 1 damaged block on this disk; files read from here may be wrong\n` +
        `  disk-gpt offset ${DAMAGE.offset} length ${DAMAGE.length} in restore point rp-1: expected ${DAMAGE.expected}, read ${DAMAGE.actual}\n\x1b[0m`,
    );
    const mountId = /^mount ([0-9a-f-]{36})/.exec(mounted.out)![1];

    const listed = await cli({ FORCE_COLOR: '1' }, 'ls', mountId, '--volume', 'p1');
    expect(listed.code).toBe(0);
    expect(listed.err).toMatch(new RegExp(`^${RED.replace('[', '\\[')}integrity: CORRUPT: 1 damaged block on this disk`));
    expect(listed.out).toMatch(/^d .* Docs\/$/m);

    const got = await cli({ FORCE_COLOR: '1' }, 'get', mountId, TREE.blob, '--volume', 'p2', '-o', join(scratch, 'blob.bin'));
    expect(got).toMatchObject({ code: 0, out: '' });
    expect(got.err).toContain(`${RED}integrity: CORRUPT: the restore point has 1 damaged block on this disk (in restore point rp-1); this file may be wrong (sendense restore ls ${mountId} lists the damaged blocks)\n\x1b[0m`);
    expect(got.err).toMatch(/saved \d+ bytes to .*blob\.bin\n$/);
    expect(sha256(await fs.readFile(join(scratch, 'blob.bin')))).toBe(sha256(blobBytes(BLOB_SIZE)));

    const plain = await cli({}, 'get', mountId, TREE.readme, '--volume', 'p1', '-o', '-');
    expect(plain.out).toBe(README_V2);
    expect(plain.err).toMatch(/^integrity: CORRUPT: the restore point has 1 damaged block/);
    expect(plain.err).not.toContain('\x1b[');

    const list = await cli({ FORCE_COLOR: '1' }, 'mounts', '--status', 'ready');
    expect(list.out).toContain(`${mountId}  ready     rp-2  disk-gpt  ${RED}corrupt\x1b[0m\n`);
    expect(list.out).toContain(`${mounts.single}  ready     single-1  disk0  verified\n`);
    expect((await cli({}, 'unmount', mountId)).code).toBe(0);
  });

  it('rebuilding the read model from the events gives the same mounts and the same integrity', async () => {
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
