import { spawnSync } from 'node:child_process';
import { promises as fs } from 'node:fs';
import { dirname, join } from 'node:path';
import { makeTempDir, removeTempDir } from '../../../test/fixtures/qcow2/chain-builder';
import { TargetFiles } from './target-files';

describe('TargetFiles.remove', () => {
  let root: string;
  beforeEach(async () => {
    root = await makeTempDir('target-files');
  });
  afterEach(async () => {
    await removeTempDir(root);
  });

  it("removes a failed point's images, digests, configuration, manifest and its dead writers' temp files, and nothing of other points or live writers", async () => {
    const dead = spawnSync(process.execPath, ['-e', '0']).pid!;
    const ownTemps = [`vm1/manifests/.rp-1.disk0.digests.tmp-${dead}-0a1b2c3d`, `vm1/manifests/.rp-1.json.tmp-${dead}-0a1b2c3e`, `vm1/manifests/.rp-1.config.json.tmp-${dead}-0a1b2c3f`];
    const kept = [
      'vm1/disk0/rp-0.qcow2',
      'vm1/manifests/rp-0.json',
      'vm1/manifests/rp-0.disk0.digests',
      'vm1/manifests/rp-0.config.json',
      `vm1/manifests/.rp-0.disk0.digests.tmp-${dead}-0a1b2c3d`,
      `vm1/manifests/.rp-10.disk0.digests.tmp-${dead}-0a1b2c3d`,
      `vm1/manifests/.rp-1.disk0.digests.tmp-${process.pid}-0a1b2c3d`,
    ];
    const written = ['vm1/disk0/rp-1.qcow2', 'vm1/disk1/rp-1.qcow2', 'vm1/manifests/rp-1.json', 'vm1/manifests/rp-1.disk0.digests', 'vm1/manifests/rp-1.config.json'];
    for (const file of [...kept, ...written, ...ownTemps]) {
      await fs.mkdir(dirname(join(root, file)), { recursive: true });
      await fs.writeFile(join(root, file), 'x');
    }

    const removed = await new TargetFiles().remove(root, 'vm1', 'rp-1', ['vm1/disk0/rp-1.qcow2', 'vm1/disk1/rp-1.qcow2']);

    expect(removed.sort()).toEqual([...written, ...ownTemps].sort());
    const left = async (dir: string) => (await fs.readdir(join(root, dir))).map((name) => `${dir}/${name}`);
    expect([...(await left('vm1/disk0')), ...(await left('vm1/disk1')), ...(await left('vm1/manifests'))].sort()).toEqual(kept.sort());
  });
});
