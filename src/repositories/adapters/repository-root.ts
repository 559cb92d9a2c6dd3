import { lstat, readdir, readFile, realpath, rm, stat, writeFile } from 'node:fs/promises';
import { dirname, isAbsolute, join, relative, resolve } from 'node:path';
import { DomainError } from '../../eventing/domain-error';

/**
 * Written into a repository's root when it is registered. A directory that already holds files is only taken as a
 * repository when it holds this (or the layout Sendense wrote before the marker existed): registering never adopts
 * a directory of someone else's files, and a repository registered again after its read models were lost (a new
 * database, a second hub) still is one.
 */
export const REPOSITORY_MARKER = '.sendense-repository';

/**
 * The directory a local repository's path names, with every symlink resolved (a missing tail, created at
 * registration, is appended to the real path of its deepest existing ancestor): the checks and the recorded root see
 * the directory the files will really land in. `..` is refused rather than resolved: no operator needs it, and a
 * path that climbs is what an attacker sends.
 */
export async function realRoot(path: string): Promise<string> {
  if (!isAbsolute(path) || path.includes('\0')) throw new DomainError('invalid', 'path must be an absolute path');
  if (path.split('/').includes('..')) throw new DomainError('invalid', `path ${path} must not contain ".."`);
  let existing = resolve(path);
  const missing: string[] = [];
  for (;;) {
    try {
      return join(await realpath(existing), ...missing);
    } catch (error) {
      if ((error as NodeJS.ErrnoException).code !== 'ENOENT' || existing === '/') throw new DomainError('invalid', `path ${path} cannot be resolved: ${(error as Error).message}`);
      // a dangling symlink is missing too, but mkdir would follow it: refuse it rather than create where it points
      if (await lstat(existing).then(() => true, () => false)) throw new DomainError('invalid', `path ${path} goes through a dangling symlink at ${existing}`);
      missing.unshift(relative(dirname(existing), existing));
      existing = dirname(existing);
    }
  }
}

/**
 * Refuses an existing root that another user controls, or that holds files that are not a repository's. The hub runs
 * as root: in a directory another user may write, that user could plant a symlink where the hub is about to create a
 * restore point's file, and the hub would write through it.
 */
export async function refuseForeignRoot(root: string): Promise<void> {
  await refuseForeignAncestors(root);
  const s = await stat(root).catch((error: NodeJS.ErrnoException) => (error.code === 'ENOENT' ? null : Promise.reject(error)));
  if (!s) return;
  if (!s.isDirectory()) throw new DomainError('invalid', `${root} exists and is not a directory`);
  if (s.uid !== HUB_UID && s.uid !== 0) throw new DomainError('invalid', `${root} belongs to another user (uid ${s.uid}): a repository's directory must belong to the hub's user`);
  if (s.mode & 0o002) throw new DomainError('invalid', `${root} is writable by every user: a repository's directory must not be`);
  const entries = await readdir(root, { withFileTypes: true });
  if (!entries.length || entries.some((e) => e.name === REPOSITORY_MARKER && e.isFile())) return;
  if (await isEarlierRepository(root, entries)) return;
  const shown = entries.slice(0, 5).map((e) => e.name).join(', ');
  throw new DomainError('invalid', `${root} is not empty and is not a Sendense repository (it holds ${shown}${entries.length > 5 ? ', …' : ''}): register an empty or new directory`);
}

const HUB_UID = process.getuid?.() ?? 0;

/**
 * Whoever may rename an entry of a directory above the repository can swap the repository's directory for a symlink
 * after it was registered: every existing ancestor must belong to the hub's user or root, and one every user may write
 * must be sticky (like /tmp, where only an entry's owner may rename it).
 */
async function refuseForeignAncestors(root: string): Promise<void> {
  for (let dir = dirname(root); ; dir = dirname(dir)) {
    const s = await stat(dir).catch((error: NodeJS.ErrnoException) => (error.code === 'ENOENT' ? null : Promise.reject(error)));
    if (s && s.uid !== HUB_UID && s.uid !== 0) throw new DomainError('invalid', `${dir} above ${root} belongs to another user (uid ${s.uid}), who could replace the repository's directory`);
    if (s && s.mode & 0o002 && !(s.mode & 0o1000)) throw new DomainError('invalid', `${dir} above ${root} is writable by every user, who could replace the repository's directory`);
    if (dir === '/') return;
  }
}

/** Before the marker: one directory per VM, each with the manifests of its points. */
async function isEarlierRepository(root: string, entries: { name: string; isDirectory(): boolean }[]): Promise<boolean> {
  const own = entries.filter((e) => !e.name.startsWith('.sendense-') && e.name !== 'lost+found');
  if (!own.length || !own.every((e) => e.isDirectory())) return false;
  for (const vm of own) if (!(await stat(join(root, vm.name, 'manifests')).then((m) => m.isDirectory(), () => false))) return false;
  return true;
}

/** Writes the marker unless it is there; says whether it wrote it, so a registration that fails can take it back. */
export async function markRepository(root: string, marker: { repositoryId: string; name: string }): Promise<boolean> {
  const file = join(root, REPOSITORY_MARKER);
  if (await readFile(file).then(() => true, () => false)) return false;
  await writeFile(file, JSON.stringify({ ...marker, registeredAt: new Date().toISOString() }) + '\n', { mode: 0o640, flag: 'wx' });
  return true;
}

export async function unmarkRepository(root: string): Promise<void> {
  await rm(join(root, REPOSITORY_MARKER), { force: true });
}
