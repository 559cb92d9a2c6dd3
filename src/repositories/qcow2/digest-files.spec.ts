import { promises as fs } from 'node:fs';
import { join } from 'node:path';
import { makeTempDir, removeTempDir } from '../../../test/fixtures/qcow2/chain-builder';
import { BlockDigests, DIGEST_BLOCK_SIZE as B, DIGEST_LENGTH } from '../../wire/block-digests';
import { combineDigestFiles, digestFileOf, readDigestFile, removeDigestFile, synthesizedDigestFile, writeDigestFile } from './digest-files';

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

  it("a synthetic full's digests are every block of the lineage it copied, later points winning, then its own changes, written over its own file", async () => {
    const lineage = [
      await writeDigestFile(root, digestFileOf('vm', 'rp-1', 'disk0'), set(0, 20, 1)),
      await writeDigestFile(root, digestFileOf('vm', 'rp-2', 'disk0'), set(10, 5, 2)),
      await writeDigestFile(root, digestFileOf('vm', 'rp-3', 'disk0'), set(30, 2, 3)),
    ];
    const own = await writeDigestFile(root, digestFileOf('vm', 'rp-4', 'disk0'), set(12, 1, 4));
    const synthesized = await synthesizedDigestFile(root, lineage, own);
    expect(synthesized).toMatchObject({ file: own.file, blocks: 22 });
    const combined = await readDigestFile(root, synthesized!);
    expect([0, 10, 12, 14, 19, 30, 31].map((block) => combined.digestAt(block)![0])).toEqual([1, 2, 4, 2, 1, 3, 3]);
    expect(combined.digestAt(25)).toBeNull();
    // the lineage's files are left as they were: their points still read through them
    expect(await readDigestFile(root, lineage[1])).toEqual(set(10, 5, 2));
  });

  it('a synthetic full whose lineage has a point without digests, or a disk that changed size, gets none (a verify then says partial)', async () => {
    const older = await writeDigestFile(root, digestFileOf('vm', 'rp-1', 'disk0'), set(0, 4, 1));
    const own = await writeDigestFile(root, digestFileOf('vm', 'rp-3', 'disk0'), set(1, 1, 2));
    expect(await synthesizedDigestFile(root, [older, null], own)).toBeNull();
    expect(await synthesizedDigestFile(root, [older], null)).toBeNull();
    const grown = await writeDigestFile(root, digestFileOf('vm', 'rp-4', 'disk0'), new BlockDigests(128 * B, [{ first: 70, count: 1, zero: false, digests: Buffer.alloc(DIGEST_LENGTH, 5) }]));
    expect(await synthesizedDigestFile(root, [older], grown)).toBeNull();
  });
});
