import { promises as fs } from 'node:fs';
import { join } from 'node:path';
import { makeTempDir, removeTempDir } from '../../../test/fixtures/qcow2/chain-builder';
import { fromManifest } from '../../restore-points/rescan.workflow';
import { ManifestError, RestorePointManifest, listManifests, manifestPath, readManifest, writeManifest } from './manifest';

function fullManifest(overrides: Partial<RestorePointManifest> = {}): RestorePointManifest {
  return {
    schemaVersion: 1,
    restorePointId: 'rp-1',
    vmId: 'vm-1',
    createdAt: '2026-11-22T10:00:00.000Z',
    parentId: null,
    type: 'full',
    disks: [
      { diskId: 'disk-0', file: 'vm-1/disk-0/rp-1.qcow2', parentFile: null, virtualSize: 67108864, fileBytes: 8716288, changeRef: 'bitmap-rp-1' },
      { diskId: 'disk-1', file: 'vm-1/disk-1/rp-1.qcow2', parentFile: null, virtualSize: 1073741824, fileBytes: 196616, changeRef: null },
    ],
    ...overrides,
  };
}

function incremental(): RestorePointManifest {
  const base = fullManifest();
  return {
    ...base,
    restorePointId: 'rp-2',
    createdAt: '2026-11-22T11:00:00.000Z',
    parentId: 'rp-1',
    type: 'incremental',
    disks: base.disks.map((d) => ({ ...d, file: d.file.replace('rp-1', 'rp-2'), parentFile: d.file })),
  };
}

describe('restore point manifests', () => {
  let repo: string;
  beforeEach(async () => {
    repo = await makeTempDir('manifest');
  });
  afterEach(async () => {
    await removeTempDir(repo);
  });

  it('carries each disk\'s digest file, so a rescan finds the digests again, and refuses a malformed reference', async () => {
    const digests = { file: 'vm-1/manifests/rp-1.disk-0.digests', sha256: 'a'.repeat(64), blocks: 12 };
    const m = fullManifest();
    m.disks[0] = { ...m.disks[0], digests };
    await writeManifest(repo, m);
    expect((await listManifests(repo)).manifests[0].disks.map((d) => d.digests ?? null)).toEqual([digests, null]);
    const bad = fullManifest();
    bad.disks[0] = { ...bad.disks[0], digests: { file: '../elsewhere', sha256: 'xyz', blocks: -1 } };
    await expect(writeManifest(repo, bad)).rejects.toThrow(/digests.file .*digests.sha256 .*digests.blocks/s);
  });

  it("carries the VM's configuration file, so a rescan finds it again, and refuses a malformed reference", async () => {
    const configuration = { file: 'vm-1/manifests/rp-1.config.json', sha256: 'b'.repeat(64), nvram: true, tpm: false };
    await writeManifest(repo, fullManifest({ configuration }));
    expect((await listManifests(repo)).manifests[0].configuration).toEqual(configuration);
    await expect(writeManifest(repo, fullManifest({ configuration: { file: 'vm-2/manifests/x.json', sha256: 'no', nvram: 1 as unknown as boolean, tpm: false } }))).rejects.toThrow(
      /configuration.file "vm-2\/manifests\/x.json" is not under vm-1\/manifests\/.*configuration.sha256 .*configuration.nvram/s,
    );
  });

  it('carries the disks the point lacks, so a rescan finds the point as lacking them, and refuses a malformed list', async () => {
    const disksLeftOut = [{ diskId: 'vdb', reason: "type='network' disks are not supported (only file-backed images)" }];
    await writeManifest(repo, fullManifest({ disksLeftOut }));
    const [found] = (await listManifests(repo)).manifests;
    expect(fromManifest(found, 'repo-1').disksLeftOut).toEqual(disksLeftOut);
    expect(fromManifest(fullManifest(), 'repo-1').disksLeftOut).toBeUndefined();
    // a manifest is a file anyone with the repository's storage can write: its text is shown without terminal controls
    expect(fromManifest(fullManifest({ disksLeftOut: [{ diskId: 'vd\u001bb', reason: `${'r'.repeat(1200)}\u202e` }] }), 'repo-1').disksLeftOut).toEqual([{ diskId: 'vd?b', reason: 'r'.repeat(1000) }]);
    await expect(writeManifest(repo, fullManifest({ disksLeftOut: [{ diskId: 7 }] as never }))).rejects.toThrow(/disksLeftOut must list \{diskId, reason\} strings/);
  });

  it('round-trips through an atomic write and leaves no temp files', async () => {
    const file = await writeManifest(repo, incremental());
    expect(file).toBe(manifestPath(repo, 'vm-1', 'rp-2'));
    expect(await readManifest(file)).toEqual(incremental());
    expect(await fs.readdir(join(repo, 'vm-1', 'manifests'))).toEqual(['rp-2.json']);
    const rewritten = { ...incremental(), disks: incremental().disks.map((d) => ({ ...d, fileBytes: 1 })) };
    await writeManifest(repo, rewritten);
    expect(await readManifest(file)).toEqual(rewritten);
  });

  it.each<[string, (m: Record<string, unknown>) => void, RegExp]>([
    ['an unknown schema version', (m) => (m.schemaVersion = 2), /unsupported schemaVersion 2/],
    ['a full with a parent', (m) => (m.parentId = 'rp-0'), /a full restore point has no parentId/],
    ['an incremental without a parent', (m) => (m.type = 'incremental'), /needs a parentId/],
    ['a bad type', (m) => (m.type = 'differential'), /type must be "full" or "incremental"/],
    ['a path-escaping id', (m) => (m.vmId = '../etc'), /vmId must match/],
    ['an invalid date', (m) => (m.createdAt = 'yesterday'), /createdAt must be an ISO date/],
    ['no disks', (m) => (m.disks = []), /disks must be a non-empty array/],
    ['a duplicate disk', (m) => (m.disks = [...(m.disks as unknown[]), (m.disks as unknown[])[0]]), /"disk-0" appears twice/],
    ['an absolute file', (m) => ((m.disks as Record<string, unknown>[])[0].file = '/srv/repo/vm-1/disk-0/rp-1.qcow2'), /disks\[0\]\.file must be relative/],
    ['a file climbing out', (m) => ((m.disks as Record<string, unknown>[])[0].file = 'vm-1/disk-0/../../x.qcow2'), /normalised path inside the repository/],
    ['a file of another disk', (m) => ((m.disks as Record<string, unknown>[])[0].file = 'vm-1/disk-1/rp-1.qcow2'), /is not under vm-1\/disk-0\//],
    ['a parent file in a full', (m) => ((m.disks as Record<string, unknown>[])[0].parentFile = 'vm-1/disk-0/rp-0.qcow2'), /parentFile must be null in a full/],
    ['a fractional size', (m) => ((m.disks as Record<string, unknown>[])[0].virtualSize = 1.5), /virtualSize must be a positive integer/],
    ['a negative fileBytes', (m) => ((m.disks as Record<string, unknown>[])[1].fileBytes = -1), /disks\[1\]\.fileBytes must be a non-negative integer/],
    ['a numeric changeRef', (m) => ((m.disks as Record<string, unknown>[])[0].changeRef = 7), /changeRef must be a string or null/],
  ])('rejects %s on read and on write', async (_label, mutate, message) => {
    const manifest = JSON.parse(JSON.stringify(fullManifest())) as Record<string, unknown>;
    mutate(manifest);
    await expect(writeManifest(repo, manifest as unknown as RestorePointManifest)).rejects.toThrow(message);
    const file = manifestPath(repo, 'vm-1', 'rp-1');
    await fs.mkdir(join(repo, 'vm-1', 'manifests'), { recursive: true });
    await fs.writeFile(file, JSON.stringify(manifest));
    const error = await readManifest(file).catch((e: unknown) => e);
    expect(error).toBeInstanceOf(ManifestError);
    expect((error as Error).message).toMatch(message);
    expect((error as Error).message).toContain(file);
  });

  it('rejects text that is not JSON and a manifest stored under another id', async () => {
    await fs.mkdir(join(repo, 'vm-1', 'manifests'), { recursive: true });
    const broken = manifestPath(repo, 'vm-1', 'rp-9');
    await fs.writeFile(broken, '{"schemaVersion": 1,');
    await expect(readManifest(broken)).rejects.toThrow(/not JSON/);
    await fs.writeFile(broken, JSON.stringify(fullManifest()));
    await expect(readManifest(broken)).rejects.toThrow(/does not match the file name "rp-9.json"/);
  });

  it('lists oldest first, skips temp files of interrupted writes, and reports invalid ones separately', async () => {
    await writeManifest(repo, incremental());
    await writeManifest(repo, fullManifest());
    await writeManifest(repo, fullManifest({ vmId: 'vm-2', disks: [{ diskId: 'd', file: 'vm-2/d/rp-1.qcow2', parentFile: null, virtualSize: 1, fileBytes: 1, changeRef: null }] }));
    const dir = join(repo, 'vm-1', 'manifests');
    await fs.writeFile(join(dir, '.rp-3.json.tmp-1-abcd'), '{');
    await fs.writeFile(join(dir, 'rp-3.json'), '[]');

    const vm1 = await listManifests(repo, 'vm-1');
    expect(vm1.manifests.map((m) => m.restorePointId)).toEqual(['rp-1', 'rp-2']);
    expect(vm1.invalid).toEqual([{ file: join(dir, 'rp-3.json'), error: expect.stringMatching(/not a JSON object/) }]);

    const all = await listManifests(repo);
    expect(all.manifests.map((m) => `${m.vmId}/${m.restorePointId}`)).toEqual(['vm-1/rp-1', 'vm-2/rp-1', 'vm-1/rp-2']);
    expect((await listManifests(repo, 'vm-unknown')).manifests).toEqual([]);
  });
});
