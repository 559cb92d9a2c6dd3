import { promises as fs } from 'node:fs';
import { join } from 'node:path';
import { MiB, makeTempDir, qemuIo, removeTempDir } from '../../test/fixtures/qcow2/chain-builder';
import { startWritableQemuNbd } from '../../test/fixtures/agent/qemu-images';
import { runProcess } from '../process/run-process';
import { QemuImgError, check, commit, compare, createFull, createOverlay, imageSummary, info, measure, parseImageInfo, rebase, summaryFromHeader } from './qemu-img';
import { readBackingFileName } from './qcow2-header';

describe('qemu-img wrappers (real qemu-img)', () => {
  let dir: string;
  beforeEach(async () => {
    dir = await makeTempDir('qemu-img');
  });
  afterEach(async () => {
    await removeTempDir(dir);
  });

  it('creates a full image and an overlay whose backing path stays relative', async () => {
    await createFull(join(dir, 'base.qcow2'), 16 * MiB);
    await createOverlay('top.qcow2', 'base.qcow2', { cwd: dir });
    const chain = await info(join(dir, 'top.qcow2'), { backingChain: true });
    expect(chain.map((i) => i.filename)).toEqual([join(dir, 'top.qcow2'), join(dir, 'base.qcow2')]);
    expect(chain[0]).toMatchObject({ format: 'qcow2', virtualSize: 16 * MiB, backingFilename: 'base.qcow2', fullBackingFilename: join(dir, 'base.qcow2'), backingFormat: 'qcow2', corrupt: false });
    expect(chain[1].backingFilename).toBeNull();
    expect(await readBackingFileName(join(dir, 'top.qcow2'))).toBe('base.qcow2');
    expect(await readBackingFileName(join(dir, 'base.qcow2'))).toBeNull();
  });

  it('refuses to overwrite an existing image and to store an absolute backing path', async () => {
    await createFull(join(dir, 'a.qcow2'), MiB);
    await expect(createFull(join(dir, 'a.qcow2'), MiB)).rejects.toThrow(/refusing to overwrite/);
    await expect(createOverlay(join(dir, 'b.qcow2'), join(dir, 'a.qcow2'))).rejects.toThrow(/must be relative/);
  });

  it('carries qemu-img stderr in its errors', async () => {
    const error = await info(join(dir, 'nope.qcow2')).catch((e: unknown) => e);
    expect(error).toBeInstanceOf(QemuImgError);
    expect((error as QemuImgError).stderr).toMatch(/Could not open .*nope\.qcow2.*No such file/);
    expect((error as QemuImgError).message).toContain('No such file');
  });

  it('check: clean, corrupt after truncation, and the error text when the image cannot be opened', async () => {
    const file = join(dir, 'c.qcow2');
    await createFull(file, 16 * MiB);
    await qemuIo(file, [{ pattern: 0x5a, offset: 0, length: 4 * MiB }]);
    expect(await check(file)).toMatchObject({ ok: true, opened: true, corruptions: 0, leaks: 0, checkErrors: 0, error: null });

    await fs.truncate(file, 2 * MiB);
    const truncated = await check(file);
    expect(truncated).toMatchObject({ ok: false, opened: true, error: null });
    expect(truncated.corruptions).toBeGreaterThan(0);
    expect(truncated.messages).toMatch(/exceeding the end of the file/);

    await fs.truncate(file, 100);
    expect(await check(file)).toMatchObject({ ok: false, opened: false, error: expect.stringMatching(/header too short/) });
  });

  it('commit keeps the top intact (-d) and rebase rewrites the backing path', async () => {
    await createFull(join(dir, 'f.qcow2'), 8 * MiB);
    await qemuIo(join(dir, 'f.qcow2'), [{ pattern: 0x01, offset: 0, length: 2 * MiB }]);
    await createOverlay(join(dir, 'n.qcow2'), 'f.qcow2');
    await qemuIo(join(dir, 'n.qcow2'), [{ pattern: 0x02, offset: MiB, length: MiB }, { zero: true, offset: 0, length: 64 * 1024 }]);
    const before = (await fs.stat(join(dir, 'n.qcow2'))).size;
    await commit(join(dir, 'n.qcow2'));
    expect((await fs.stat(join(dir, 'n.qcow2'))).size).toBe(before);
    expect(await compare(join(dir, 'f.qcow2'), join(dir, 'n.qcow2'))).toBe(true);

    await createFull(join(dir, 'other.qcow2'), 8 * MiB);
    await rebase(join(dir, 'n.qcow2'), 'other.qcow2', { unsafe: true });
    expect((await info(join(dir, 'n.qcow2'))).backingFilename).toBe('other.qcow2');
    expect(await compare(join(dir, 'f.qcow2'), join(dir, 'n.qcow2'))).toBe(false);
    await rebase(join(dir, 'n.qcow2'), null, { unsafe: true });
    expect((await info(join(dir, 'n.qcow2'))).backingFilename).toBeNull();
  });

  it('measures a file and a size', async () => {
    const file = join(dir, 'm.qcow2');
    await createFull(file, 64 * MiB);
    await qemuIo(file, [{ pattern: 0x7e, offset: 0, length: 3 * MiB }]);
    const used = await measure({ file });
    expect(used.required).toBeGreaterThanOrEqual(3 * MiB);
    expect(used.fullyAllocated).toBeGreaterThanOrEqual(64 * MiB);
    const empty = await measure({ size: 64 * MiB });
    expect(empty.required).toBeLessThan(MiB);
  });

  describe("an image's summary from its header", () => {
    const qemuImg = (...args: string[]) => runProcess('qemu-img', args);
    const qemuInfo = async (file: string, format?: string) => parseImageInfo((await qemuImg('info', '-U', ...(format ? ['-f', format] : []), '--output=json', file)).stdout);

    it('answers what qemu-img info answers: sizes, backing files as qemu combines them, bitmaps with their flags and granularity, encryption', async () => {
      await fs.mkdir(join(dir, 'sub'));
      await qemuImg('create', '-q', '-f', 'qcow2', join(dir, 'base.qcow2'), '48M');
      await qemuImg('create', '-q', '-f', 'qcow2', '-F', 'qcow2', '-b', 'base.qcow2', join(dir, 'relative.qcow2'));
      await qemuImg('create', '-q', '-f', 'qcow2', '-F', 'qcow2', '-b', '../base.qcow2', join(dir, 'sub', 'up.qcow2'), '64M');
      await qemuImg('create', '-q', '-f', 'qcow2', '-F', 'qcow2', '-b', join(dir, 'base.qcow2'), join(dir, 'absolute.qcow2'));
      await qemuImg('create', '-q', '-f', 'qcow2', '-o', 'cluster_size=4096', join(dir, 'bitmaps.qcow2'), '1G');
      // names of several lengths: every entry is padded to 8 bytes differently
      for (const [name, extra] of [['a', []], ['sendense-0123456789abcdef', ['-g', '131072']], ['off', []], ['x'.repeat(64), ['-g', '512']]] as const) {
        await qemuImg('bitmap', '--add', ...extra, '-f', 'qcow2', join(dir, 'bitmaps.qcow2'), name);
      }
      await qemuImg('bitmap', '--disable', '-f', 'qcow2', join(dir, 'bitmaps.qcow2'), 'off');
      await fs.writeFile(join(dir, 'secret'), 'sendense');
      // the legacy AES encryption: qemu-img 7.2 still creates it, without timing PBKDF2 as LUKS does
      await qemuImg('create', '-q', '-f', 'qcow2', '-o', 'encrypt.format=aes,encrypt.key-secret=s0', '--object', `secret,id=s0,file=${join(dir, 'secret')}`, join(dir, 'aes.qcow2'), '8M');
      const files = ['base.qcow2', 'relative.qcow2', 'sub/up.qcow2', 'absolute.qcow2', 'bitmaps.qcow2'].map((f) => join(dir, f));
      for (const file of files) {
        const expected = await qemuInfo(file);
        expect({ file, summary: summaryFromHeader(file, file, 'qcow2', true) }).toEqual({ file, summary: expected });
        expect({ file, summary: summaryFromHeader(file, file, undefined, false) }).toEqual({ file, summary: expected });
        expect(await imageSummary(file, { format: 'qcow2', shareLocks: false })).toEqual(expected);
      }
      expect((await qemuInfo(files[4])).bitmaps.map((b) => [b.name, b.granularity, b.flags])).toEqual([
        // without -g, a bitmap's granularity is the image's cluster size
        ['a', 4096, ['auto']],
        ['sendense-0123456789abcdef', 131072, ['auto']],
        ['off', 4096, []],
        ['x'.repeat(64), 512, ['auto']],
      ]);
      expect(summaryFromHeader(join(dir, 'sub', 'up.qcow2'), join(dir, 'sub', 'up.qcow2'), 'qcow2', true)?.backingFile).toBe(`${join(dir, 'sub')}/../base.qcow2`);
      // relative to the working directory, as given
      const relative = parseImageInfo((await runProcess('qemu-img', ['info', '-U', '--output=json', 'relative.qcow2'], { cwd: dir })).stdout);
      expect(relative.backingFile).toBe('base.qcow2');
      expect(await imageSummary('relative.qcow2', { cwd: dir })).toEqual(relative);
      // a declared raw image: its length (a qcow2's bytes read as raw, as qemu-img -f raw does)
      expect(summaryFromHeader(files[4], files[4], 'raw', true)).toEqual(await qemuInfo(files[4], 'raw'));
      const aes = await qemuInfo(join(dir, 'aes.qcow2'));
      expect(aes.encrypted).toBe(true);
      expect(summaryFromHeader(join(dir, 'aes.qcow2'), join(dir, 'aes.qcow2'), 'qcow2', true)).toEqual(aes);
    });

    it('leaves to qemu-img what it would read otherwise: other versions and features, probing, devices, a raw lock check, bitmaps in use without shared locks', async () => {
      await qemuImg('create', '-q', '-f', 'qcow2', '-o', 'compat=0.10', join(dir, 'v2.qcow2'), '8M');
      await qemuImg('create', '-q', '-f', 'qcow2', '-o', 'extended_l2=on', join(dir, 'extended.qcow2'), '8M');
      await qemuImg('create', '-q', '-f', 'raw', join(dir, 'disk.raw'), '8M');
      const nulls = [
        [join(dir, 'v2.qcow2'), 'qcow2', true],
        [join(dir, 'extended.qcow2'), 'qcow2', true],
        [join(dir, 'disk.raw'), undefined, true],
        [join(dir, 'disk.raw'), 'qcow2', true],
        [join(dir, 'disk.raw'), 'raw', false],
        [join(dir, 'disk.raw'), 'vmdk', true],
        ['/dev/null', 'raw', true],
        [join(dir, 'missing.qcow2'), 'qcow2', true],
      ] as const;
      for (const [file, format, shareLocks] of nulls) expect({ file, format, shareLocks, summary: summaryFromHeader(file, file, format, shareLocks) }).toEqual({ file, format, shareLocks, summary: null });
      // and qemu-img answers them
      expect(await imageSummary(join(dir, 'v2.qcow2'))).toEqual(await qemuInfo(join(dir, 'v2.qcow2')));
      expect(await imageSummary(join(dir, 'disk.raw'))).toMatchObject({ format: 'raw', virtualSize: 8 * MiB });
      await expect(imageSummary(join(dir, 'missing.qcow2'), { format: 'qcow2' })).rejects.toThrow(/Could not open .*missing\.qcow2/);

      // a writer holds the image: its bitmaps read in use, and only qemu-img can say whether the writer lives
      const file = join(dir, 'held.qcow2');
      await qemuImg('create', '-q', '-f', 'qcow2', file, '8M');
      await qemuImg('bitmap', '--add', '-f', 'qcow2', file, 'b');
      const writer = await startWritableQemuNbd(file, join(dir, 'held.sock'));
      try {
        expect(summaryFromHeader(file, file, 'qcow2', true)?.bitmaps).toEqual([{ name: 'b', granularity: 65536, flags: ['in-use', 'auto'], enabled: true, inUse: true }]);
        expect(summaryFromHeader(file, file, 'qcow2', true)).toEqual(await qemuInfo(file));
        expect(summaryFromHeader(file, file, 'qcow2', false)).toBeNull();
        const locked = await imageSummary(file, { format: 'qcow2', shareLocks: false }).catch((e: unknown) => e);
        expect(locked).toBeInstanceOf(QemuImgError);
        expect((locked as QemuImgError).locked).toBe(true);
      } finally {
        await writer.kill9();
      }
      // the writer died with the flag set: qemu-img, without -U now, reads the bitmap as left
      expect((await imageSummary(file, { format: 'qcow2', shareLocks: false })).bitmaps).toEqual([{ name: 'b', granularity: 65536, flags: ['in-use', 'auto'], enabled: true, inUse: true }]);
    });
  });
});
