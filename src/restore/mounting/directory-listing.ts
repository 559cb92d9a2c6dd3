import { promises as fs, Stats } from 'node:fs';
import { join } from 'node:path';
import { resolveInsideVolume } from './safe-path';
import { InvalidVolumePathError, NotADirectoryPathError } from './volume-path-errors';

export interface DirectoryEntry {
  name: string;
  type: 'file' | 'dir' | 'symlink' | 'other';
  size: number;
  /** ISO 8601, UTC. */
  mtime: string;
  /** Permission bits (with setuid/setgid/sticky) as 4 octal digits, e.g. "0644". */
  mode: string;
  /** Only for symlinks: the link text as stored, never followed. */
  linkTarget?: string;
}

export interface DirectoryPage {
  entries: DirectoryEntry[];
  /** Pass as cursor to get the next page; null on the last page. */
  nextCursor: string | null;
}

export interface ListOptions {
  limit?: number;
  /** The last name of the previous page; entries sort strictly after it. */
  cursor?: string;
}

export const DEFAULT_LIST_LIMIT = 500;
export const MAX_LIST_LIMIT = 10_000;

function entryType(stats: Stats): DirectoryEntry['type'] {
  if (stats.isSymbolicLink()) return 'symlink';
  if (stats.isDirectory()) return 'dir';
  if (stats.isFile()) return 'file';
  return 'other';
}

/** Code-unit order: total and locale-independent, so a cursor means the same thing on every call. */
function byName(a: string, b: string): number {
  return a < b ? -1 : a > b ? 1 : 0;
}

/**
 * One page of a directory inside a volume. Entries are lstat'ed, never
 * followed: a symlink is listed as a symlink with its target text, wherever
 * it points, and listing it cannot touch anything outside the volume. Only
 * the page's own entries are stat'ed, so paging through a huge directory
 * costs a readdir and a sort per page, not a stat of every file.
 */
export async function listDirectory(volumeRoot: string, userPath: string, options: ListOptions = {}): Promise<DirectoryPage> {
  const limit = options.limit ?? DEFAULT_LIST_LIMIT;
  if (!Number.isInteger(limit) || limit < 1 || limit > MAX_LIST_LIMIT) throw new InvalidVolumePathError(`limit must be an integer from 1 to ${MAX_LIST_LIMIT}`, userPath);
  const dir = await resolveInsideVolume(volumeRoot, userPath);
  if (!(await fs.stat(dir)).isDirectory()) throw new NotADirectoryPathError('not a directory', userPath);

  const names = (await fs.readdir(dir)).sort(byName);
  const cursor = options.cursor;
  const from = cursor === undefined || cursor === '' ? 0 : names.findIndex((name) => byName(name, cursor) > 0);
  const pageNames = from < 0 ? [] : names.slice(from, from + limit);

  const entries: DirectoryEntry[] = [];
  for (const name of pageNames) {
    const path = join(dir, name);
    let stats: Stats;
    try {
      stats = await fs.lstat(path);
    } catch {
      continue; // unreadable entry (e.g. a corrupt inode): leave it out rather than fail the page
    }
    const entry: DirectoryEntry = {
      name,
      type: entryType(stats),
      size: stats.size,
      // Filesystems from other OSes can hold timestamps a Date cannot represent.
      mtime: Number.isFinite(stats.mtime.getTime()) ? stats.mtime.toISOString() : new Date(0).toISOString(),
      mode: (stats.mode & 0o7777).toString(8).padStart(4, '0'),
    };
    if (entry.type === 'symlink') entry.linkTarget = await fs.readlink(path).catch(() => '');
    entries.push(entry);
  }
  const last = from < 0 ? -1 : from + pageNames.length;
  const nextCursor = last >= 0 && last < names.length && pageNames.length ? pageNames[pageNames.length - 1] : null;
  return { entries, nextCursor };
}
