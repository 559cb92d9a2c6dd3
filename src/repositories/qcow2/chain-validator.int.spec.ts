import { promises as fs } from 'node:fs';
import { join } from 'node:path';
import { BuiltChain, MiB, buildStandardChain, makeTempDir, removeTempDir } from '../../../test/fixtures/qcow2/chain-builder';
import { ChainLink, diskChainLinks, validateChain } from './chain-validator';
import { RestorePointManifest } from './manifest';
import { runQemuImg } from '../../qemu/qemu-img';
import { rebase } from './qemu-img';

describe('validateChain (real images)', () => {
  let repo: string;
  let diskDir: string;
  let chain: BuiltChain;
  let links: ChainLink[];

  beforeEach(async () => {
    repo = await makeTempDir('validate');
    diskDir = join(repo, 'vm-1', 'disk-0');
    await fs.mkdir(diskDir, { recursive: true });
    chain = await buildStandardChain(diskDir);
    links = await Promise.all(
      chain.files.map(async (file, i) => ({
        file: `vm-1/disk-0/rp-${i + 1}.qcow2`,
        parentFile: i === 0 ? null : `vm-1/disk-0/rp-${i}.qcow2`,
        virtualSize: 64 * MiB,
        fileBytes: (await fs.stat(file)).size,
      })),
    );
  });
  afterEach(async () => {
    await removeTempDir(repo);
  });

  it('accepts a healthy chain', async () => {
    expect(await validateChain(repo, links)).toEqual({ ok: true, problems: [], warnings: [] });
  });

  it('reports a missing file', async () => {
    await fs.unlink(chain.files[3]);
    const result = await validateChain(repo, links);
    expect(result.ok).toBe(false);
    expect(result.problems).toEqual(['vm-1/disk-0/rp-4.qcow2: file is missing']);
  });

  it('reports a file truncated by whole clusters (qemu-img check sees it) and by a few bytes (only the recorded size shows it)', async () => {
    await fs.truncate(chain.files[1], Math.floor(links[1].fileBytes! / 2));
    const half = await validateChain(repo, links);
    expect(half.ok).toBe(false);
    expect(half.problems).toEqual(expect.arrayContaining([expect.stringMatching(/^vm-1\/disk-0\/rp-2\.qcow2: truncated: \d+ bytes on disk, \d+ recorded$/), expect.stringMatching(/^vm-1\/disk-0\/rp-2\.qcow2: qcow2 check found \d+ corruption/)]));

    await fs.truncate(chain.files[3], links[3].fileBytes! - 1000);
    const tail = await validateChain(repo, links);
    expect(tail.problems).toContainEqual(expect.stringMatching(/^vm-1\/disk-0\/rp-4\.qcow2: truncated/));
    expect(tail.problems.filter((p) => p.startsWith('vm-1/disk-0/rp-4.qcow2'))).toHaveLength(1);
  });

  it('reports a broken backing path when a parent was renamed', async () => {
    await fs.rename(chain.files[1], join(diskDir, 'renamed.qcow2'));
    const result = await validateChain(repo, links);
    expect(result.ok).toBe(false);
    expect(result.problems).toEqual(['vm-1/disk-0/rp-2.qcow2: file is missing', 'vm-1/disk-0/rp-3.qcow2: broken backing path: "rp-2.qcow2" does not exist']);
  });

  it('reports a wrong parent', async () => {
    await rebase(chain.files[2], 'rp-1.qcow2', { unsafe: true });
    const result = await validateChain(repo, links);
    expect(result.problems).toEqual([`vm-1/disk-0/rp-3.qcow2: wrong parent: backs onto "rp-1.qcow2" (${join(diskDir, 'rp-1.qcow2')}) but its recorded parent is vm-1/disk-0/rp-2.qcow2`]);
  });

  it('reports an absolute backing path, which would break when the repository moves', async () => {
    await runQemuImg(['rebase', '-u', '-f', 'qcow2', '-b', join(diskDir, 'rp-1.qcow2'), '-F', 'qcow2', chain.files[1]]);
    const result = await validateChain(repo, links);
    expect(result.problems).toEqual([`vm-1/disk-0/rp-2.qcow2: backing path "${join(diskDir, 'rp-1.qcow2')}" is absolute, so the repository cannot be moved`]);
  });

  it('reads the same where one file of the chain has a layout only qemu-img reads (qcow2 v2)', async () => {
    await runQemuImg(['amend', '-f', 'qcow2', '-o', 'compat=0.10', chain.files[1]]);
    expect(await validateChain(repo, links)).toEqual({ ok: true, problems: [], warnings: [] });
    await rebase(chain.files[2], 'rp-1.qcow2', { unsafe: true });
    expect((await validateChain(repo, links)).problems).toEqual([`vm-1/disk-0/rp-3.qcow2: wrong parent: backs onto "rp-1.qcow2" (${join(diskDir, 'rp-1.qcow2')}) but its recorded parent is vm-1/disk-0/rp-2.qcow2`]);
  });

  it('reports a file whose corrupt flag qemu set', async () => {
    const handle = await fs.open(chain.files[2], 'r+');
    const features = Buffer.alloc(8);
    await handle.read(features, 0, 8, 72);
    features.writeBigUInt64BE(features.readBigUInt64BE(0) | 2n);
    await handle.write(features, 0, 8, 72);
    await handle.close();
    expect((await validateChain(repo, links)).problems).toEqual(['vm-1/disk-0/rp-3.qcow2: qcow2 corrupt flag is set']);
  });

  it('reports a recorded chain that does not link up and a virtual size that differs', async () => {
    const result = await validateChain(repo, [links[0], links[2], { ...links[3], virtualSize: MiB }]);
    expect(result.problems).toEqual([
      'vm-1/disk-0/rp-3.qcow2: recorded parent vm-1/disk-0/rp-2.qcow2 is not the previous point vm-1/disk-0/rp-1.qcow2',
      `vm-1/disk-0/rp-4.qcow2: virtual size ${64 * MiB}, ${MiB} recorded`,
    ]);
  });

  it('builds the links of one disk from manifests', () => {
    const manifests: RestorePointManifest[] = links.map((link, i) => ({
      schemaVersion: 1,
      restorePointId: `rp-${i + 1}`,
      vmId: 'vm-1',
      createdAt: new Date(Date.UTC(2026, 10, 22, i)).toISOString(),
      parentId: i === 0 ? null : `rp-${i}`,
      type: i === 0 ? 'full' : 'incremental',
      disks: [{ diskId: 'disk-0', file: link.file, parentFile: link.parentFile, virtualSize: link.virtualSize!, fileBytes: link.fileBytes!, changeRef: null }],
    }));
    expect(diskChainLinks(manifests, 'rp-3', 'disk-0')).toEqual(links.slice(0, 3));
    expect(() => diskChainLinks(manifests, 'rp-3', 'disk-9')).toThrow(/has no disk disk-9/);
  });
});
