import { promises as fs } from 'node:fs';
import { dirname, isAbsolute, join, relative, resolve, sep } from 'node:path';
import { InvalidVolumePathError, PathEscapesVolumeError, VolumePathNotFoundError } from './volume-path-errors';

/** Characters an encoded form must never smuggle in: a dot (for ".."), separators, and NUL. */
const DANGEROUS_DECODED = new Set([0x00, 0x2e, 0x2f, 0x5c]);
/** Enough to unwrap %25-nesting any realistic chain of decoders could apply. */
const MAX_DECODE_ROUNDS = 4;
/** Linux gives up on symlink chains at 40 as well. */
const MAX_SYMLINK_HOPS = 40;

/**
 * The path is used exactly as given (the HTTP layer has decoded it once),
 * so "a%20b" names a file called "a%20b". But if one more decoding, by any
 * layer, could turn it into a dot, a separator or NUL, it is an attack or a
 * double-encoding bug: refuse it rather than guess which layer is right.
 */
function hasEncodedTraversal(path: string): boolean {
  let current = path;
  for (let round = 0; round < MAX_DECODE_ROUNDS && /%[0-9a-f]{2}/i.test(current); round++) {
    let dangerous = false;
    current = current.replace(/%([0-9a-f]{2})/gi, (_, hex: string) => {
      const byte = parseInt(hex, 16);
      if (DANGEROUS_DECODED.has(byte)) dangerous = true;
      return String.fromCharCode(byte);
    });
    if (dangerous) return true;
  }
  return false;
}

/** Inside or equal; compared on real paths, so "/vol/p1" does not contain "/vol/p10". */
export function isInsideRoot(rootReal: string, candidate: string): boolean {
  const rel = relative(rootReal, candidate);
  return rel === '' || (rel !== '..' && !rel.startsWith(`..${sep}`) && !isAbsolute(rel));
}

/**
 * The relative segments of userPath after validation; ".." is applied lexically and may not climb above the root.
 * A leading "/" names the volume root (users copy paths as the VM saw them: "/etc" is "etc"), never the host's.
 */
function lexicalSegments(userPath: string): string[] {
  if (typeof userPath !== 'string') throw new InvalidVolumePathError('path must be a string', String(userPath));
  if (userPath.includes('\0')) throw new InvalidVolumePathError('path contains a NUL byte', userPath);
  if (hasEncodedTraversal(userPath)) throw new InvalidVolumePathError('path contains a percent-encoded dot, slash, backslash or NUL', userPath);
  const segments: string[] = [];
  for (const segment of userPath.split('/')) {
    if (segment === '' || segment === '.') continue;
    if (segment === '..') {
      if (!segments.length) throw new PathEscapesVolumeError('path leaves the volume through ".."', userPath);
      segments.pop();
    } else {
      segments.push(segment);
    }
  }
  return segments;
}

function errnoOf(error: unknown): string | undefined {
  return (error as NodeJS.ErrnoException)?.code;
}

/**
 * realpath failed somewhere below the root: walk the components to tell a
 * missing file (404) from a dangling symlink that points out of the volume
 * (403), so an attacker learns nothing about the host either way and the
 * user gets an honest answer.
 */
async function classifyUnresolvable(rootReal: string, segments: readonly string[], userPath: string): Promise<never> {
  let parentReal = rootReal;
  for (const segment of segments) {
    const next = join(parentReal, segment);
    try {
      const real = await fs.realpath(next);
      if (!isInsideRoot(rootReal, real)) throw new PathEscapesVolumeError('path leads out of the volume through a symlink', userPath);
      parentReal = real;
      continue;
    } catch (error) {
      if (error instanceof PathEscapesVolumeError) throw error;
      if (errnoOf(error) === 'ELOOP') throw new InvalidVolumePathError('too many levels of symbolic links', userPath);
    if (errnoOf(error) === 'ENAMETOOLONG') throw new InvalidVolumePathError('a name in the path is longer than the filesystem allows', userPath);
      if (errnoOf(error) !== 'ENOENT' && errnoOf(error) !== 'ENOTDIR') throw error;
    }
    await rejectDanglingEscape(rootReal, next, userPath);
    throw new VolumePathNotFoundError('no such file or directory in this volume', userPath);
  }
  throw new VolumePathNotFoundError('no such file or directory in this volume', userPath);
}

/** Follows a dangling symlink chain by hand; any hop outside the root makes the whole path an escape. */
async function rejectDanglingEscape(rootReal: string, path: string, userPath: string): Promise<void> {
  let current = path;
  for (let hop = 0; hop < MAX_SYMLINK_HOPS; hop++) {
    let target: string;
    try {
      if (!(await fs.lstat(current)).isSymbolicLink()) return;
      target = await fs.readlink(current);
    } catch {
      return;
    }
    let base = dirname(current);
    try {
      base = await fs.realpath(base);
    } catch {
      /* a missing parent: judge the link lexically */
    }
    current = resolve(base, target);
    if (!isInsideRoot(rootReal, current)) throw new PathEscapesVolumeError('path leads out of the volume through a symlink', userPath);
  }
  throw new InvalidVolumePathError('too many levels of symbolic links', userPath);
}

/**
 * Maps a user-supplied path (relative to the volume root) to a real path
 * inside the volume, or throws a VolumePathError. Symlinks are followed,
 * including at the last component, and allowed only while the real path
 * stays inside the real root: a link to /etc/passwd or ../../.. is refused,
 * a link to a sibling directory is fine. The answer is a fully resolved
 * path, so opening it follows no further links; the volume is mounted
 * read-only, so nothing can swap a link in between.
 */
export async function resolveInsideVolume(volumeRoot: string, userPath: string): Promise<string> {
  const segments = lexicalSegments(userPath);
  const rootReal = await fs.realpath(volumeRoot);
  let real: string;
  try {
    real = await fs.realpath(join(rootReal, ...segments));
  } catch (error) {
    if (errnoOf(error) === 'ELOOP') throw new InvalidVolumePathError('too many levels of symbolic links', userPath);
    if (errnoOf(error) === 'ENAMETOOLONG') throw new InvalidVolumePathError('a name in the path is longer than the filesystem allows', userPath);
    if (errnoOf(error) === 'ENOENT' || errnoOf(error) === 'ENOTDIR') return classifyUnresolvable(rootReal, segments, userPath);
    throw error;
  }
  if (!isInsideRoot(rootReal, real)) throw new PathEscapesVolumeError('path leads out of the volume through a symlink', userPath);
  return real;
}
