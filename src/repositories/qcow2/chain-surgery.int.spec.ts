import { randomBytes } from 'node:crypto';
import { promises as fs } from 'node:fs';
import { basename, join } from 'node:path';
import { BuiltChain, buildStandardChain, contentMismatches, makeTempDir, removeTempDir } from '../../../test/fixtures/qcow2/chain-builder';
import { ChainSurgeryError, deleteNewest, findDependents, mergeOldestIntoNext, removeMiddle } from './chain-surgery';
import { validateChain } from './chain-validator';
import { imageArgs, imageJson, imageKeys, readKeyFile } from '../../qemu/image-keys';
import { compare, createOverlay, info, rebase, runQemuImg, synthesizeFull } from './qemu-img';

// Every surgery runs on a chain in the clear and on one of an encrypted repository (qcow2 LUKS, the key in a file).
// Every test works on a copy of one chain: writing an encrypted file's LUKS header costs qemu ~2 s of CPU.
describe.each(['plain', 'encrypted'] as const)('chain surgery on a real 64 MiB %s chain (full + 3 incrementals)', (kind) => {
  let repository: string;
  let keyDir: string;
  let template: BuiltChain;
  let dir: string;
  let runs = 0;
  let rp: string[];
  let ref: string[];

  beforeAll(async () => {
    repository = await makeTempDir('surgery');
    if (kind === 'encrypted') {
      keyDir = await makeTempDir('surgery-key');
      const keyFile = join(keyDir, 'key');
      await fs.writeFile(keyFile, randomBytes(32).toString('hex'), { mode: 0o600 });
      imageKeys.register({ root: repository, name: 'surgery', keyFile, fingerprint: readKeyFile(keyFile).fingerprint });
    }
    await fs.mkdir(join(repository, 'template'));
    template = await buildStandardChain(join(repository, 'template'));
  });
  afterAll(async () => {
    imageKeys.unregister(repository);
    await removeTempDir(repository);
    if (kind === 'encrypted') await removeTempDir(keyDir);
  });
  beforeEach(async () => {
    dir = join(repository, `run-${++runs}`);
    await fs.cp(template.dir, dir, { recursive: true });
    rp = template.files.map((file) => join(dir, basename(file)));
    ref = template.references.map((file) => join(dir, 'references', basename(file)));
  });

  it('writes every point of the chain encrypted only where the repository has a key', async () => {
    for (const file of rp) expect((await info(file)).encrypted).toBe(kind === 'encrypted');
  });

  it('a synthetic full of the newest point stands alone, reads exactly as the point, is encrypted where the repository is, and leaves the chain as it was', async () => {
    const synthetic = join(dir, 'synthetic.qcow2');
    const virtualSize = (await info(rp[3])).virtualSize;
    await synthesizeFull(rp[3], synthetic, virtualSize);
    expect(await info(synthetic)).toMatchObject({ backingFilename: null, virtualSize, encrypted: kind === 'encrypted' });
    expect(await contentMismatches([[synthetic, ref[3]] as const, ...rp.map((f, i) => [f, ref[i]] as const)])).toEqual([]);
    // a grown disk: the copy is the new size, the point's data at the start, zeroes after it
    const grown = join(dir, 'grown.qcow2');
    await synthesizeFull(rp[3], grown, virtualSize * 2);
    expect((await info(grown)).virtualSize).toBe(virtualSize * 2);
    expect(await compare(rp[3], grown)).toBe(true);
    await expect(synthesizeFull(rp[2], synthetic, virtualSize)).rejects.toThrow(/refusing to overwrite/);
  });

  const linksOf = (files: string[]) => files.map((file, i) => ({ file: basename(file), parentFile: i === 0 ? null : basename(files[i - 1]) }));

  it('builds four points that each read differently and match their references', async () => {
    expect(await contentMismatches(rp.map((f, i) => [f, ref[i]] as const))).toEqual([]);
    for (let i = 1; i < ref.length; i++) expect(await compare(ref[i - 1], ref[i], { formatA: 'raw', formatB: 'raw' })).toBe(false);
    expect(await validateChain(dir, linksOf(rp))).toMatchObject({ ok: true });
  });

  it('notices lost content: an unsafe rebase that skips a point changes what the child reads', async () => {
    await rebase(rp[3], 'rp-2.qcow2', { unsafe: true });
    expect(await contentMismatches(rp.map((f, i) => [f, ref[i]] as const))).toEqual([rp[3]]);
  });

  it('deletes the oldest, then a middle point, then the newest, keeping every remaining point bit-identical', async () => {
    const merged = await mergeOldestIntoNext({ oldest: rp[0], next: rp[1] });
    expect(merged).toMatchObject({ file: rp[1], removed: rp[0], stepsRun: ['commit', 'replace', 'relink'] });
    expect(merged.fileBytes).toBe((await fs.stat(rp[1])).size);
    await expect(fs.stat(rp[0])).rejects.toThrow(/ENOENT/);
    expect((await info(rp[1])).backingFilename).toBeNull();
    expect(await contentMismatches([[rp[1], ref[1]], [rp[2], ref[2]], [rp[3], ref[3]]])).toEqual([]);
    expect(await validateChain(dir, linksOf([rp[1], rp[2], rp[3]]))).toMatchObject({ ok: true, problems: [] });
    expect(await fs.readdir(dir)).not.toContainEqual(expect.stringMatching(/^\.merge-/));

    expect(await removeMiddle({ child: rp[3], middle: rp[2], parent: rp[1] })).toEqual({ removed: true });
    await expect(fs.stat(rp[2])).rejects.toThrow(/ENOENT/);
    expect((await info(rp[3])).backingFilename).toBe('rp-2.qcow2');
    expect(await contentMismatches([[rp[1], ref[1]], [rp[3], ref[3]]])).toEqual([]);
    expect(await validateChain(dir, linksOf([rp[1], rp[3]]))).toMatchObject({ ok: true, problems: [] });

    await expect(deleteNewest(rp[1])).rejects.toThrow(/rp-4\.qcow2 back onto it/);
    expect(await deleteNewest(rp[3])).toEqual({ removed: true });
    expect(await deleteNewest(rp[3])).toEqual({ removed: false });
    expect(await contentMismatches([[rp[1], ref[1]]])).toEqual([]);
    expect(await validateChain(dir, linksOf([rp[1]]))).toMatchObject({ ok: true });
  });

  it('removeMiddle finishes after a crash between the rebase and the unlink, and is idempotent', async () => {
    await rebase(rp[2], 'rp-1.qcow2', { unsafe: false });
    expect((await info(rp[2])).backingFilename).toBe('rp-1.qcow2');
    expect(await removeMiddle({ child: rp[2], middle: rp[1], parent: rp[0] })).toEqual({ removed: true });
    expect(await removeMiddle({ child: rp[2], middle: rp[1], parent: rp[0] })).toEqual({ removed: false });
    expect(await contentMismatches([[rp[0], ref[0]], [rp[2], ref[2]], [rp[3], ref[3]]])).toEqual([]);
  });

  if (kind === 'encrypted') {
    it('removeMiddle finishes after a crash between the two steps of an encrypted rebase (the child on its parent under a json: name)', async () => {
      // the first step of qemu-img.ts rebase, alone: the new backing named by its options
      const image = imageArgs(rp[2], imageKeys.keyForImage(rp[2]));
      await runQemuImg(['rebase', '-q', ...image.slice(0, -1), '-b', `json:${JSON.stringify(imageJson(rp[0], imageKeys.keyForImage(rp[0])!))}`, '-F', 'qcow2', image.at(-1)!]);
      expect((await info(rp[2])).backingFilename).toMatch(/^json:/);
      expect(await findDependents(rp[0])).toEqual([rp[1], rp[2]]);
      expect(await removeMiddle({ child: rp[2], middle: rp[1], parent: rp[0] })).toEqual({ removed: true });
      expect((await info(rp[2])).backingFilename).toBe('rp-1.qcow2');
      expect(await contentMismatches([[rp[0], ref[0]], [rp[2], ref[2]], [rp[3], ref[3]]])).toEqual([]);
    });
  }

  it('refuses surgery that would break a second branch reading through the file', async () => {
    await createOverlay(join(dir, 'branch.qcow2'), 'rp-1.qcow2');
    await createOverlay(join(dir, 'branch2.qcow2'), 'rp-3.qcow2');
    expect(await findDependents(rp[0])).toEqual([join(dir, 'branch.qcow2'), rp[1]]);
    await expect(mergeOldestIntoNext({ oldest: rp[0], next: rp[1] })).rejects.toThrow(/also the backing file of branch\.qcow2/);
    await expect(removeMiddle({ child: rp[3], middle: rp[2], parent: rp[1] })).rejects.toThrow(ChainSurgeryError);
    await expect(mergeOldestIntoNext({ oldest: rp[1], next: rp[2] })).rejects.toThrow(/not the oldest point/);
    await expect(removeMiddle({ child: rp[3], middle: rp[1], parent: rp[0] })).rejects.toThrow(/backs onto .*rp-3\.qcow2, neither/);
    expect(await contentMismatches(rp.map((f, i) => [f, ref[i]] as const))).toEqual([]);
    expect(await fs.readdir(dir)).not.toContainEqual(expect.stringMatching(/^\.merge-/));
  });
});
