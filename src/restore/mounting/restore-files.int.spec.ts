import { createReadStream, promises as fs } from 'node:fs';
import { createHash } from 'node:crypto';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { pipeline } from 'node:stream/promises';
import { extractArchive } from '../../../test/fixtures/restore/archive-extract';
import { buildRestoreFixtures, GPT_VOLUMES, MBR_VOLUMES, removeRestoreFixtures, RestoreFixtures } from '../../../test/fixtures/restore/restore-images';
import { BLOB_SIZE, blobBytes, README_V2, sha256, TREE, treeManifest } from '../../../test/fixtures/restore/source-tree';
import { archiveDirectory, ArchiveFormat } from './archive';
import { listDirectory } from './directory-listing';
import { RestorePointMounter } from './restore-point-mounter';
import type { MountedRestorePoint } from './restore-volume';
import { resolveInsideVolume } from './safe-path';
import { InvalidVolumePathError, PathEscapesVolumeError, VolumePathNotFoundError } from './volume-path-errors';

/** Reads a file the way the download endpoint will: resolve, then stream from the resolved path. */
async function downloadSha256(volumeRoot: string, userPath: string): Promise<string> {
  const hash = createHash('sha256');
  await pipeline(createReadStream(await resolveInsideVolume(volumeRoot, userPath)), hash);
  return hash.digest('hex');
}

describe('browsing, downloading and archiving files of a mounted restore point', () => {
  let fixtures: RestoreFixtures;
  let root: string;
  let scratch: string;
  const mounter = new RestorePointMounter();
  let gpt: MountedRestorePoint;
  let mbr: MountedRestorePoint;
  const mountPath = (m: MountedRestorePoint, id: string) => m.volumes.find((v) => v.id === id)!.mountPath!;

  beforeAll(async () => {
    fixtures = await buildRestoreFixtures();
    root = await fs.mkdtemp(join(tmpdir(), 'sendense-restore-files-'));
    scratch = await fs.mkdtemp(join(tmpdir(), 'sendense-restore-extract-'));
    gpt = await mounter.mount({ mountId: 'gpt', imageFile: fixtures.gpt.incremental, workDir: join(root, 'gpt') });
    mbr = await mounter.mount({ mountId: 'mbr', imageFile: fixtures.mbr.base, workDir: join(root, 'mbr') });
  }, 120_000);

  afterAll(async () => {
    await mounter.unmount('gpt');
    await mounter.unmount('mbr');
    await fs.rm(root, { recursive: true, force: true });
    await fs.rm(scratch, { recursive: true, force: true });
    await removeRestoreFixtures(fixtures);
  });

  it('lists the volume root and nested directories with lstat data, symlinks not followed', async () => {
    const ext4 = mountPath(gpt, GPT_VOLUMES.ext4);
    const rootPage = await listDirectory(ext4, '');
    expect(rootPage.entries.map((e) => [e.name, e.type])).toEqual([
      ['Data', 'dir'],
      ['Docs', 'dir'],
      ['Empty File.txt', 'file'],
      ['Links', 'dir'],
      ['Unicode ✓ Dir', 'dir'],
      ['lost+found', 'dir'],
    ]);
    const links = await listDirectory(ext4, 'Links');
    expect(links.entries.map((e) => [e.name, e.type, e.linkTarget])).toEqual([
      ['DanglingOutside', 'symlink', '../../../../../../../../nonexistent-outside/file'],
      ['DirInside', 'symlink', '../Docs'],
      ['Inside', 'symlink', '../Docs/ReadMe.txt'],
      ['OutsideAbsolute', 'symlink', '/etc/passwd'],
      ['OutsideRelative', 'symlink', '../../../../../../../../etc/passwd'],
    ]);
    const data = await listDirectory(ext4, 'Data');
    expect(data.entries).toEqual([{ name: 'Blob.bin', type: 'file', size: BLOB_SIZE, mtime: expect.stringMatching(/^\d{4}-\d\d-\d\dT/), mode: '0644' }]);
    const unicode = await listDirectory(mountPath(mbr, MBR_VOLUMES.vfat), 'Unicode ✓ Dir');
    expect(unicode.entries.map((e) => e.name)).toEqual(['Grüße aus Köln.txt']);
  });

  it('pages through a directory', async () => {
    const ntfs = mountPath(mbr, MBR_VOLUMES.ntfs);
    const first = await listDirectory(ntfs, 'Links', { limit: 2 });
    const second = await listDirectory(ntfs, 'Links', { limit: 2, cursor: first.nextCursor! });
    const third = await listDirectory(ntfs, 'Links', { limit: 2, cursor: second.nextCursor! });
    expect([...first.entries, ...second.entries, ...third.entries].map((e) => e.name)).toEqual(['DanglingOutside', 'DirInside', 'Inside', 'OutsideAbsolute', 'OutsideRelative']);
    expect(third.nextCursor).toBeNull();
  });

  it.each([
    ['gpt', GPT_VOLUMES.ext4],
    ['gpt', GPT_VOLUMES.xfs],
    ['gpt', GPT_VOLUMES.vfat],
    ['mbr', MBR_VOLUMES.ntfs],
  ])('reads files byte-exact from %s %s, through inside symlinks too', async (disk, id) => {
    const volumeRoot = mountPath(disk === 'gpt' ? gpt : mbr, id);
    expect(await downloadSha256(volumeRoot, TREE.blob)).toBe(sha256(blobBytes(BLOB_SIZE)));
    expect(await downloadSha256(volumeRoot, TREE.empty)).toBe(sha256(''));
    expect(await downloadSha256(volumeRoot, TREE.unicode)).toBe(sha256('Grüße ✓\n'));
  });

  it('serves the incremental content of the changed file, also through a symlink', async () => {
    const ext4 = mountPath(gpt, GPT_VOLUMES.ext4);
    expect(await downloadSha256(ext4, TREE.readme)).toBe(sha256(README_V2));
    expect(await downloadSha256(ext4, TREE.linkInside)).toBe(sha256(README_V2));
    expect(await downloadSha256(ext4, 'Links/DirInside/ReadMe.txt')).toBe(sha256(README_V2));
  });

  it.each([GPT_VOLUMES.ext4, GPT_VOLUMES.xfs])('refuses traversal and symlink escapes on %s', async (id) => {
    const volumeRoot = mountPath(gpt, id);
    for (const path of ['..', '../p2/Docs/ReadMe.txt', 'Docs/../../..', TREE.linkOutsideAbsolute, TREE.linkOutsideRelative, TREE.linkDanglingOutside]) {
      await expect(resolveInsideVolume(volumeRoot, path)).rejects.toBeInstanceOf(PathEscapesVolumeError);
    }
    for (const path of ['%2e%2e/%2e%2e/etc/passwd', 'Docs%2f..%2f..', 'Docs/ReadMe.txt\0.jpg']) {
      await expect(resolveInsideVolume(volumeRoot, path)).rejects.toBeInstanceOf(InvalidVolumePathError);
    }
    // A leading slash is the volume's root: the host's /etc/passwd is never reached.
    await expect(resolveInsideVolume(volumeRoot, '/etc/passwd')).rejects.toBeInstanceOf(VolumePathNotFoundError);
    await expect(resolveInsideVolume(volumeRoot, `/${TREE.readme}`)).resolves.toBe(await resolveInsideVolume(volumeRoot, TREE.readme));
    await expect(resolveInsideVolume(volumeRoot, 'Docs/Missing.txt')).rejects.toBeInstanceOf(VolumePathNotFoundError);
    await expect(listDirectory(volumeRoot, '..')).rejects.toBeInstanceOf(PathEscapesVolumeError);
  });

  it.each<[ArchiveFormat, string, string]>([
    ['tar.gz', 'gpt', GPT_VOLUMES.ext4],
    ['zip', 'gpt', GPT_VOLUMES.xfs],
    ['zip', 'mbr', MBR_VOLUMES.ntfs],
    ['tar.gz', 'mbr', MBR_VOLUMES.vfat],
  ])('archives a directory as %s from %s %s; the extracted tree equals the source', async (format, disk, id) => {
    const volumeRoot = mountPath(disk === 'gpt' ? gpt : mbr, id);
    const source = disk === 'gpt' && id === GPT_VOLUMES.ext4 ? fixtures.trees.v2 : id === MBR_VOLUMES.vfat ? fixtures.trees.v1NoSymlinks : fixtures.trees.v1;
    const into = join(scratch, `${disk}-${id}-${format}`);
    const archive = await archiveDirectory(volumeRoot, 'Docs', format);
    await extractArchive(format, archive.stream, into);
    await archive.done;
    expect(await treeManifest(into)).toEqual(await treeManifest(join(source, 'Docs')));
  });

  it('archives a whole volume with its escaping symlinks stored as links, never as the host files they name', async () => {
    const into = join(scratch, 'whole-zip');
    const archive = await archiveDirectory(mountPath(gpt, GPT_VOLUMES.xfs), '', 'zip');
    await extractArchive('zip', archive.stream, into);
    await archive.done;
    expect(await treeManifest(into)).toEqual(await treeManifest(fixtures.trees.v1));
    expect(await fs.readlink(join(into, TREE.linkOutsideAbsolute))).toBe('/etc/passwd');
  });
});
