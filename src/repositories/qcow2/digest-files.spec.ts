import { promises as fs } from 'node:fs';
import { join } from 'node:path';
import { makeTempDir, removeTempDir } from '../../../test/fixtures/qcow2/chain-builder';
import { BlockDigests, DIGEST_BLOCK_SIZE as B, DIGEST_LENGTH } from '../../wire/block-digests';
import { combineDigestFiles, digestFileOf, readDigestFile, removeDigestFile, writeDigestFile } from './digest-files';

const set = (first: number, count: number, fill: number) => new BlockDigests(64 * B, [{ first, count, zero: false, digests: Buffer.alloc(count * DIGEST_LENGTH, fill) }]);

describe('digest files beside the manifests', () => {
  let root: string;
  beforeEach(async () => {
    root = await makeTempDir('digests');
  });
  afterEach(async () => {
    await removeTempDir(root);
  });

  it('a merge writes the union over the child, survives being run again after a crash, and refuses a damaged file', async () => {
    const older = await writeDigestFile(root, digestFileOf('vm', 'rp-1', 'disk0'), set(0, 10, 1));
    const newer = await writeDigestFile(root, digestFileOf('vm', 'rp-2', 'disk0'), set(5, 10, 2));
    expect(await readDigestFile(root, newer)).toEqual(set(5, 10, 2));

    const union = await combineDigestFiles(root, older, newer);
    expect(union).toMatchObject({ file: newer.file, blocks: 15 });
    const combined = await readDigestFile(root, union!);
    expect([combined.digestAt(2)![0], combined.digestAt(7)![0], combined.digestAt(14)![0]]).toEqual([1, 2, 2]);
    // resumed: the chain still records the child's old SHA-256, the file already is the union
    expect(await combineDigestFiles(root, older, newer)).toEqual(union);
    await removeDigestFile(root, older.file);
    expect(await combineDigestFiles(root, older, newer)).toEqual(union);

    await fs.writeFile(join(root, newer.file), set(5, 10, 3).encode());
    await expect(readDigestFile(root, union!)).rejects.toThrow(/damaged/);
    await writeDigestFile(root, older.file, set(0, 10, 1));
    await expect(combineDigestFiles(root, older, newer)).rejects.toThrow(/damaged/);
    // a side without digests leaves blocks nobody can vouch for
    expect(await combineDigestFiles(root, null, newer)).toBeNull();
  });
});
