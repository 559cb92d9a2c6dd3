import { promises as fs } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import execa from 'execa';
import { bytesAfterZipEndRecord, extractArchive } from '../../../test/fixtures/restore/archive-extract';
import { README_V1, treeManifest, writeSourceTree } from '../../../test/fixtures/restore/source-tree';
import { processesMentioning } from '../../../test/support/processes';
import { archiveDirectory, ArchiveFormat } from './archive';
import { NotADirectoryPathError, PathEscapesVolumeError } from './volume-path-errors';

describe('archiveDirectory', () => {
  let base: string;
  let root: string;

  beforeAll(async () => {
    base = await fs.mkdtemp(join(tmpdir(), 'sendense-archive-'));
    root = join(base, 'vol');
    await writeSourceTree(root, { readme: README_V1, symlinks: true });
    await fs.mkdir(join(root, 'Empty Dir'));
    // Targets that look like archive member names must come out unchanged.
    await fs.symlink('./Inside', join(root, 'Links/DotSlash'));
    await fs.symlink('.', join(root, 'Links/Dot'));
  });

  afterAll(async () => {
    await fs.rm(base, { recursive: true, force: true });
  });

  it.each<ArchiveFormat>(['tar.gz', 'zip'])('%s of the whole volume extracts to the same tree, symlinks kept as symlinks', async (format) => {
    const archive = await archiveDirectory(root, '', format);
    expect(archive.suggestedFileName).toBe(`volume.${format}`);
    const into = join(base, `out-root-${format}`);
    const zipFile = await extractArchive(format, archive.stream, into);
    await archive.done;
    if (zipFile) expect(await bytesAfterZipEndRecord(zipFile)).toBe(0);
    expect(await treeManifest(into)).toEqual(await treeManifest(root));
    // The out-of-volume links were archived as links, not as the host's /etc/passwd.
    expect(await fs.readlink(join(into, 'Links/OutsideAbsolute'))).toBe('/etc/passwd');
    expect((await fs.lstat(join(into, 'Links/OutsideRelative'))).isSymbolicLink()).toBe(true);
  });

  it.each<ArchiveFormat>(['tar.gz', 'zip'])('%s of a subdirectory holds only that subdirectory', async (format) => {
    const archive = await archiveDirectory(root, 'Docs', format);
    expect(archive.suggestedFileName).toBe(`Docs.${format}`);
    const into = join(base, `out-docs-${format}`);
    await extractArchive(format, archive.stream, into);
    await archive.done;
    expect(await treeManifest(into)).toEqual(await treeManifest(join(root, 'Docs')));
  });

  it.each<ArchiveFormat>(['tar.gz', 'zip'])('%s of an empty directory is a valid, empty archive', async (format) => {
    const archive = await archiveDirectory(root, 'Empty Dir', format);
    const into = join(base, `out-empty-${format}`);
    const zipFile = await extractArchive(format, archive.stream, into);
    await archive.done;
    if (zipFile) expect(await bytesAfterZipEndRecord(zipFile)).toBe(0);
    expect(await fs.readdir(into)).toEqual([]);
  });

  it('zip leaves out what it cannot hold (a FIFO) and says so', async () => {
    const dir = join(base, 'with-fifo');
    await fs.mkdir(dir);
    await fs.writeFile(join(dir, 'kept.txt'), 'kept');
    await execa('mkfifo', [join(dir, 'pipe')]);
    const archive = await archiveDirectory(base, 'with-fifo', 'zip');
    const into = join(base, 'out-fifo');
    await extractArchive('zip', archive.stream, into);
    expect((await archive.done).warnings.join('\n')).toMatch(/pipe: zip format cannot archive named pipes/);
    expect(await fs.readdir(into)).toEqual(['kept.txt']);
  });

  it('refuses files and escapes before starting any tool', async () => {
    await expect(archiveDirectory(root, 'Docs/ReadMe.txt', 'zip')).rejects.toBeInstanceOf(NotADirectoryPathError);
    await expect(archiveDirectory(root, 'Links/OutsideAbsolute', 'tar.gz')).rejects.toBeInstanceOf(PathEscapesVolumeError);
    await expect(archiveDirectory(root, '..', 'tar.gz')).rejects.toBeInstanceOf(PathEscapesVolumeError);
  });

  it('kills the archiver when the reader goes away', async () => {
    const big = join(base, 'big');
    await fs.mkdir(big);
    const { randomBytes } = await import('node:crypto');
    for (let i = 0; i < 4; i++) await fs.writeFile(join(big, `r${i}`), randomBytes(8 * 1024 * 1024));
    const archive = await archiveDirectory(base, 'big', 'tar.gz');
    await new Promise((resolve) => archive.stream.once('data', resolve));
    archive.stream.destroy();
    await expect(archive.done).rejects.toThrow(/killed by SIGTERM|exit/);
    expect(processesMentioning(big)).toEqual([]);
  });
});
