import { promises as fs } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { listDirectory } from './directory-listing';
import { InvalidVolumePathError, NotADirectoryPathError, PathEscapesVolumeError } from './volume-path-errors';

describe('listDirectory', () => {
  let base: string;
  let root: string;

  beforeAll(async () => {
    base = await fs.mkdtemp(join(tmpdir(), 'sendense-listing-'));
    root = join(base, 'vol');
    await fs.mkdir(join(root, 'big'), { recursive: true });
    await fs.mkdir(join(root, 'b-dir'));
    await fs.writeFile(join(root, 'c-file'), 'hello');
    await fs.chmod(join(root, 'c-file'), 0o640);
    await fs.utimes(join(root, 'c-file'), new Date('2024-01-02T03:04:05Z'), new Date('2024-01-02T03:04:05Z'));
    await fs.symlink('/etc/passwd', join(root, 'a-link-out'));
    await fs.symlink('c-file', join(root, 'd-link-in'));
    await fs.symlink('b-dir', join(root, 'e-dir-link'));
    await fs.writeFile(join(root, 'Z-upper'), '');
    await fs.writeFile(join(root, 'é-accent'), '');
    for (let i = 0; i < 25; i++) await fs.writeFile(join(root, 'big', `f${String(i).padStart(2, '0')}`), '');
  });

  afterAll(async () => {
    await fs.rm(base, { recursive: true, force: true });
  });

  it('lists entries sorted by name with type, size, mtime, mode, and symlink targets without following them', async () => {
    const page = await listDirectory(root, '');
    expect(page.nextCursor).toBeNull();
    expect(page.entries.map((e) => e.name)).toEqual(['Z-upper', 'a-link-out', 'b-dir', 'big', 'c-file', 'd-link-in', 'e-dir-link', 'é-accent']);
    const byName = Object.fromEntries(page.entries.map((e) => [e.name, e]));
    expect(byName['c-file']).toEqual({ name: 'c-file', type: 'file', size: 5, mtime: '2024-01-02T03:04:05.000Z', mode: '0640' });
    expect(byName['b-dir'].type).toBe('dir');
    expect(byName['a-link-out']).toMatchObject({ type: 'symlink', linkTarget: '/etc/passwd', size: '/etc/passwd'.length });
    expect(byName['d-link-in']).toMatchObject({ type: 'symlink', linkTarget: 'c-file' });
    expect(byName['e-dir-link']).toMatchObject({ type: 'symlink', linkTarget: 'b-dir' });
  });

  it('pages with limit and cursor until every entry was seen once', async () => {
    const seen: string[] = [];
    let cursor: string | undefined;
    let pages = 0;
    do {
      const page = await listDirectory(root, 'big', { limit: 10, cursor });
      seen.push(...page.entries.map((e) => e.name));
      cursor = page.nextCursor ?? undefined;
      pages++;
    } while (cursor);
    expect(pages).toBe(3);
    expect(seen).toEqual(Array.from({ length: 25 }, (_, i) => `f${String(i).padStart(2, '0')}`));
  });

  it('returns no next cursor when the last page is exactly full', async () => {
    const page = await listDirectory(root, 'big', { limit: 5, cursor: 'f19' });
    expect(page.entries.map((e) => e.name)).toEqual(['f20', 'f21', 'f22', 'f23', 'f24']);
    expect(page.nextCursor).toBeNull();
  });

  it('treats a cursor that is not an entry name as a position in the order', async () => {
    const page = await listDirectory(root, 'big', { limit: 2, cursor: 'f055' });
    expect(page.entries.map((e) => e.name)).toEqual(['f06', 'f07']);
    expect((await listDirectory(root, 'big', { cursor: 'zzz' })).entries).toEqual([]);
  });

  it('lists through a symlinked directory that stays inside, refuses one that leaves', async () => {
    await expect(listDirectory(root, 'e-dir-link')).resolves.toEqual({ entries: [], nextCursor: null });
    await expect(listDirectory(root, 'a-link-out')).rejects.toBeInstanceOf(PathEscapesVolumeError);
  });

  it('refuses files and bad limits', async () => {
    await expect(listDirectory(root, 'c-file')).rejects.toBeInstanceOf(NotADirectoryPathError);
    await expect(listDirectory(root, '', { limit: 0 })).rejects.toBeInstanceOf(InvalidVolumePathError);
    await expect(listDirectory(root, '', { limit: 1.5 })).rejects.toBeInstanceOf(InvalidVolumePathError);
    await expect(listDirectory(root, '', { limit: 1e9 })).rejects.toBeInstanceOf(InvalidVolumePathError);
  });
});
