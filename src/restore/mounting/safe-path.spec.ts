import { promises as fs } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { resolveInsideVolume } from './safe-path';
import { InvalidVolumePathError, PathEscapesVolumeError, VolumePathNotFoundError } from './volume-path-errors';

/**
 * A volume root with a sibling whose name extends the root's ("vol" and
 * "vol-secret"), so a prefix check without a separator would be caught.
 */
describe('resolveInsideVolume', () => {
  let base: string;
  let root: string;

  beforeAll(async () => {
    base = await fs.mkdtemp(join(tmpdir(), 'sendense-safe-path-'));
    root = join(base, 'vol');
    await fs.mkdir(join(root, 'dir/sub'), { recursive: true });
    await fs.mkdir(join(base, 'vol-secret'));
    await fs.writeFile(join(base, 'vol-secret/key'), 'secret');
    await fs.writeFile(join(root, 'dir/file.txt'), 'x');
    await fs.writeFile(join(root, 'a%20b'), 'literal percent name');
    await fs.writeFile(join(root, '100%.txt'), 'literal percent');
    await fs.writeFile(join(root, 'with space ✓.txt'), 'x');
    await fs.symlink('dir/file.txt', join(root, 'inside-link'));
    await fs.symlink('dir', join(root, 'inside-dir-link'));
    await fs.symlink('../../dir/file.txt', join(root, 'dir/sub/up-but-inside'));
    await fs.symlink('../vol-secret', join(root, 'sibling-dir-link'));
    await fs.symlink('../vol-secret/key', join(root, 'sibling-file-link'));
    await fs.symlink('/etc', join(root, 'abs-dir-link'));
    await fs.symlink('/etc/passwd', join(root, 'abs-file-link'));
    await fs.symlink('../../../../../../../etc/passwd', join(root, 'dir/rel-out-link'));
    await fs.symlink('../../nowhere/at/all', join(root, 'dangling-out'));
    await fs.symlink('dir/missing', join(root, 'dangling-in'));
    await fs.symlink('hop2', join(root, 'hop1'));
    await fs.symlink('../vol-secret/nope', join(root, 'hop2'));
    await fs.symlink('loop-b', join(root, 'loop-a'));
    await fs.symlink('loop-a', join(root, 'loop-b'));
  });

  afterAll(async () => {
    await fs.rm(base, { recursive: true, force: true });
  });

  const real = async (rel: string) => fs.realpath(join(root, rel));

  it.each([
    ['', ''],
    ['.', ''],
    ['dir', 'dir'],
    ['dir/', 'dir'],
    ['dir//sub/./', 'dir/sub'],
    ['dir/sub/../file.txt', 'dir/file.txt'],
    ['a%20b', 'a%20b'],
    ['100%.txt', '100%.txt'],
    ['with space ✓.txt', 'with space ✓.txt'],
    ['/', ''],
    ['/dir/file.txt', 'dir/file.txt'],
    ['//dir/./sub/', 'dir/sub'],
    ['/dir/sub/../file.txt', 'dir/file.txt'],
  ])('accepts %j', async (userPath, expected) => {
    await expect(resolveInsideVolume(root, userPath)).resolves.toBe(await real(expected));
  });

  it('follows symlinks that stay inside, returning the real target', async () => {
    await expect(resolveInsideVolume(root, 'inside-link')).resolves.toBe(await real('dir/file.txt'));
    await expect(resolveInsideVolume(root, 'inside-dir-link/file.txt')).resolves.toBe(await real('dir/file.txt'));
    await expect(resolveInsideVolume(root, 'dir/sub/up-but-inside')).resolves.toBe(await real('dir/file.txt'));
  });

  it.each([
    ['..'],
    ['../vol-secret/key'],
    ['dir/../../vol-secret/key'],
    ['dir/../..'],
    ['/..'],
    ['/../vol-secret/key'],
    ['/dir/../../vol-secret/key'],
  ])('refuses %j as leaving the volume (403)', async (userPath) => {
    await expect(resolveInsideVolume(root, userPath)).rejects.toBeInstanceOf(PathEscapesVolumeError);
  });

  it.each([
    ['abs-file-link'],
    ['abs-dir-link'],
    ['abs-dir-link/passwd'],
    ['dir/rel-out-link'],
    ['sibling-dir-link'],
    ['sibling-dir-link/key'],
    ['sibling-file-link'],
    ['dangling-out'],
    ['dangling-out/deeper'],
    ['hop1'],
    ['/abs-dir-link/passwd'],
    ['/sibling-file-link'],
  ])('refuses the symlink escape %j (403)', async (userPath) => {
    const error = await resolveInsideVolume(root, userPath).catch((e: unknown) => e);
    expect(error).toBeInstanceOf(PathEscapesVolumeError);
    expect((error as PathEscapesVolumeError).status).toBe(403);
  });

  it.each([
    ['/%2e%2e/vol-secret/key', 'encoded dots after a leading slash'],
    ['dir\0/file.txt', 'NUL'],
    ['%2e%2e/vol-secret/key', 'encoded dots'],
    ['%2E%2E', 'encoded dots, upper case'],
    ['..%2fvol-secret', 'encoded slash'],
    ['dir%2f..%2f..%2fvol-secret', 'encoded slashes'],
    ['%252e%252e/etc', 'double-encoded dots'],
    ['dir%00', 'encoded NUL'],
    ['..%5c..%5cwindows', 'encoded backslash'],
  ])('refuses %j (%s) as malformed (400)', async (userPath) => {
    const error = await resolveInsideVolume(root, userPath).catch((e: unknown) => e);
    expect(error).toBeInstanceOf(InvalidVolumePathError);
    expect((error as InvalidVolumePathError).status).toBe(400);
  });

  it('reads a leading slash as the volume root, never the host root (404 for a host file the volume lacks)', async () => {
    await expect(resolveInsideVolume(root, '/etc/passwd')).rejects.toBeInstanceOf(VolumePathNotFoundError);
    await expect(resolveInsideVolume(root, '/inside-link')).resolves.toBe(await real('dir/file.txt'));
  });

  it('reports missing paths and dangling links that stay inside as not found (404)', async () => {
    await expect(resolveInsideVolume(root, 'no/such/file')).rejects.toBeInstanceOf(VolumePathNotFoundError);
    await expect(resolveInsideVolume(root, 'dir/file.txt/under-a-file')).rejects.toBeInstanceOf(VolumePathNotFoundError);
    await expect(resolveInsideVolume(root, 'dangling-in')).rejects.toBeInstanceOf(VolumePathNotFoundError);
  });

  it('refuses symlink loops as malformed (400)', async () => {
    await expect(resolveInsideVolume(root, 'loop-a')).rejects.toBeInstanceOf(InvalidVolumePathError);
  });

  it('refuses a name longer than the filesystem allows as malformed (400), not as a failure of the hub', async () => {
    const error = await resolveInsideVolume(root, 'a'.repeat(2000)).catch((e: unknown) => e);
    expect(error).toBeInstanceOf(InvalidVolumePathError);
    expect((error as InvalidVolumePathError).message).toContain('a name in the path is longer than the filesystem allows');
  });

  it('works when the volume root itself is reached through a symlink', async () => {
    const alias = join(base, 'alias');
    await fs.symlink(root, alias);
    await expect(resolveInsideVolume(alias, 'inside-link')).resolves.toBe(await real('dir/file.txt'));
    await expect(resolveInsideVolume(alias, 'sibling-file-link')).rejects.toBeInstanceOf(PathEscapesVolumeError);
  });
});
