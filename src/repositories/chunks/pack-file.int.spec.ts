import { randomBytes } from 'node:crypto';
import { existsSync, mkdtempSync, readFileSync, rmSync, statSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { supportsDirectIo } from '../../qemu/qemu-nbd-args';
import { PackFile } from './pack-file';

/**
 * Real files: the suite's temp directory (ext4 on our machines, which takes O_DIRECT and wants it aligned) and
 * /dev/shm (tmpfs: refused O_DIRECT before Linux 6.6, takes it since without asking for alignment). Whatever the filesystem, every append is in the file, byte for byte, once it resolves (a reader of
 * the pack being written reads the records before its pending ones from the file), and the closed pack is exactly
 * the bytes appended.
 */
describe('PackFile', () => {
  const dirs: string[] = [];
  afterAll(() => dirs.forEach((dir) => rmSync(dir, { recursive: true, force: true })));

  const filesystems: [string, string][] = [['the temp directory', tmpdir()], ...(existsSync('/dev/shm') ? [['tmpfs (/dev/shm)', '/dev/shm'] as [string, string]] : [])];

  it.each(filesystems)('on %s, each append is in the file when it resolves, and the closed pack is exactly what was appended', async (_name, root) => {
    const dir = mkdtempSync(join(root, 'sendense-pack-file-'));
    dirs.push(dir);
    const path = join(dir, 'p.pack');
    const file = await PackFile.create(path, 0o640);
    const probe = join(dir, 'probe');
    writeFileSync(probe, '');
    const direct = supportsDirectIo(probe);
    expect(file.directIo).toBe(direct);

    const appended: Buffer[] = [];
    // records of odd sizes (a block carried from one append to the next), an append of one byte, and appends larger
    // than the stage (written in several pieces)
    const sizes = [[65_565, 7_001, 13], [1], [4096], [3, 4093], [65_536 * 70 + 17], [12_345, 65_536 * 66], [4095, 1, 2]];
    for (const parts of sizes) {
      const buffers = parts.map((n) => randomBytes(n));
      await file.append(buffers);
      appended.push(...buffers);
      const expected = Buffer.concat(appended);
      expect(file.size).toBe(expected.length);
      // padding past the end may be there until sync; every byte appended is already in place
      const onDisk = readFileSync(path);
      expect(onDisk.length).toBeGreaterThanOrEqual(expected.length);
      expect(onDisk.subarray(0, expected.length).equals(expected)).toBe(true);
      // every write stayed aligned: none fell back to the page cache
      expect(file.directIo).toBe(direct);
    }
    await file.sync();
    await file.close();
    const expected = Buffer.concat(appended);
    expect(statSync(path).size).toBe(expected.length);
    expect(readFileSync(path).equals(expected)).toBe(true);
  });

  it('goes past the page cache on a filesystem that takes O_DIRECT, and not where asked not to', async () => {
    const dir = mkdtempSync(join(tmpdir(), 'sendense-pack-file-'));
    dirs.push(dir);
    const probe = join(dir, 'probe');
    writeFileSync(probe, '');
    // the suite's temp directory is ext4 where .ci/run runs: a run there that silently wrote through the page cache
    // would leave the backup path without what this class is for
    expect(supportsDirectIo(probe)).toBe(true);
    const direct = await PackFile.create(join(dir, 'a.pack'), 0o640);
    const buffered = await PackFile.create(join(dir, 'b.pack'), 0o640, { direct: false });
    expect([direct.directIo, buffered.directIo]).toEqual([true, false]);
    const data = randomBytes(100_000);
    await direct.append([data]);
    await buffered.append([data]);
    for (const file of [direct, buffered]) {
      await file.sync();
      await file.close();
    }
    expect(readFileSync(join(dir, 'a.pack')).equals(data)).toBe(true);
    expect(readFileSync(join(dir, 'b.pack')).equals(data)).toBe(true);
  });

  it('after an append that failed, refuses every later one: the block it carried may be gone from its stage', async () => {
    const dir = mkdtempSync(join(tmpdir(), 'sendense-pack-file-'));
    dirs.push(dir);
    const file = await PackFile.create(join(dir, 'p.pack'), 0o640);
    await file.append([randomBytes(5000)]);
    await file.close();
    await expect(file.append([randomBytes(10)])).rejects.toThrow();
    await expect(file.append([randomBytes(10)])).rejects.toThrow(/an earlier append to this pack failed/);
  });

  it('never opens an existing file', async () => {
    const dir = mkdtempSync(join(tmpdir(), 'sendense-pack-file-'));
    dirs.push(dir);
    const path = join(dir, 'p.pack');
    writeFileSync(path, 'someone else');
    await expect(PackFile.create(path, 0o640)).rejects.toMatchObject({ code: 'EEXIST' });
    expect(readFileSync(path, 'utf8')).toBe('someone else');
  });
});
