import { promises as fs } from 'node:fs';
import { join } from 'node:path';
import { MiB, makeTempDir, qemuIo, removeTempDir } from '../../test/fixtures/qcow2/chain-builder';
import { QemuImgError, check, commit, compare, createFull, createOverlay, info, measure, rebase } from './qemu-img';
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
});
