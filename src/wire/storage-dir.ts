/**
 * Where a restore may write on the agent's host, as far as the path alone tells: both ends check it (the hub
 * before it asks the agent, the agent before it touches anything), so the two cannot disagree on a path.
 */

/** Far below PATH_MAX (4096): the agent's reports name `<storageDir>/<name>-<diskId>.qcow2`, and the hub takes those. */
const STORAGE_DIR_MAX = 1024;
/** NAME_MAX of every Linux filesystem a restore would write to. */
const STORAGE_DIR_SEGMENT_MAX = 255;
/** Kernel interfaces, not storage: a disk image written there is lost, or worse, written to a device. */
export const SYSTEM_TREES = ['/proc', '/sys', '/dev'] as const;

const SEGMENT = /^[A-Za-z0-9._+-]+$/;

/** Why `dir` cannot be a restore's storage dir, or null when its path is fine (the host decides the rest). */
export function storageDirProblem(dir: string): string | null {
  if (dir.length > STORAGE_DIR_MAX) return `storageDir must be at most ${STORAGE_DIR_MAX} characters (it has ${dir.length})`;
  const segments = dir.split('/').slice(1);
  if (!dir.startsWith('/') || segments.some((s) => !SEGMENT.test(s) || s === '.' || s === '..')) return 'storageDir must be an absolute path of plain segments (A-Z a-z 0-9 . _ + -, no . or ..)';
  const long = segments.find((s) => s.length > STORAGE_DIR_SEGMENT_MAX);
  if (long) return `storageDir segments must be at most ${STORAGE_DIR_SEGMENT_MAX} characters each (one has ${long.length})`;
  const tree = systemTreeOf(dir);
  if (tree) return `storageDir may not be in ${SYSTEM_TREES.join(', ').replace(/, (?=[^,]*$)/, ' or ')}`;
  return null;
}

/** The kernel tree `path` lies in, if any. */
export function systemTreeOf(path: string): string | null {
  return SYSTEM_TREES.find((t) => path === t || path.startsWith(`${t}/`)) ?? null;
}
