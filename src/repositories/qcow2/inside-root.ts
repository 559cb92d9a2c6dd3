import { isAbsolute, relative, resolve, sep } from 'node:path';

/** A path the hub built to a repository file leads outside the repository: nothing is created, renamed or removed. */
export class OutsideRootError extends Error {
  constructor(root: string, path: string) {
    super(`refusing ${JSON.stringify(path)}: it is not inside the repository ${root}`);
    this.name = 'OutsideRootError';
  }
}

/**
 * Returns the absolute form of `path` (absolute, or relative to `root`) when it lies strictly inside `root`; throws
 * otherwise. Ids that reach file names come from other parties (an agent's inventory, a remote hub's points): a
 * `..` or `/` that slipped past their validation must still never make the hub create, rename or unlink a file
 * outside the repository. Lexical on purpose: the repository's own directories are the hub's, no one else links them.
 */
export function insideRoot(root: string, path: string): string {
  if (root.includes('\0') || path.includes('\0')) throw new OutsideRootError(root, path);
  const base = resolve(root);
  const full = resolve(base, path);
  const rel = relative(base, full);
  if (rel === '' || rel === '..' || rel.startsWith(`..${sep}`) || isAbsolute(rel)) throw new OutsideRootError(root, path);
  return full;
}
