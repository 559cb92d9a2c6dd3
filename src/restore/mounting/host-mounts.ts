import { promises as fs } from 'node:fs';
import { isWithin } from './work-dir-layout';
import { runTool } from './run-tool';

export interface HostMount {
  source: string;
  mountPoint: string;
  fsType: string;
  options: string[];
}

/** /proc/mounts escapes space, tab, newline and backslash as octal so that fields stay space-separated. */
function unescapeMountField(field: string): string {
  return field.replace(/\\([0-7]{3})/g, (_, octal: string) => String.fromCharCode(parseInt(octal, 8)));
}

export function parseProcMounts(text: string): HostMount[] {
  return text
    .split('\n')
    .filter((line) => line.trim() !== '')
    .map((line) => {
      const [source, mountPoint, fsType, options] = line.split(' ');
      return { source: unescapeMountField(source), mountPoint: unescapeMountField(mountPoint), fsType, options: (options ?? '').split(',') };
    });
}

export async function readHostMounts(): Promise<HostMount[]> {
  return parseProcMounts(await fs.readFile('/proc/mounts', 'utf8'));
}

/**
 * Mounts at or below dir, deepest first and, at equal depth, latest first:
 * the order in which they can be taken down (a mount stacked on another
 * appears after it in /proc/mounts).
 */
export async function mountsWithin(dir: string): Promise<HostMount[]> {
  const mounts = (await readHostMounts()).map((m, order) => ({ m, order })).filter(({ m }) => isWithin(dir, m.mountPoint));
  const depth = (p: string) => p.split('/').length;
  mounts.sort((a, b) => depth(b.m.mountPoint) - depth(a.m.mountPoint) || b.order - a.order);
  return mounts.map(({ m }) => m);
}

/**
 * Makes `dir` a mount of its own with shared propagation. A mount namespace made while a point is mounted (libvirt
 * makes one for every qemu it starts, a browser's sandbox another) holds a copy of every mount below; on a host whose
 * root mount is private (a container's), unmounting ours does not reach those copies, and they keep the volumes' loop
 * devices and nbdfuse's file open until that other process exits. Under a shared mount the copies are its slaves
 * and go with ours.
 */
export async function shareMount(dir: string): Promise<void> {
  await runTool('mount', ['--bind', dir, dir]);
  await runTool('mount', ['--make-shared', dir]);
}

export function isFuseMount(mount: HostMount): boolean {
  return mount.fsType === 'fuse' || mount.fsType === 'fuseblk' || mount.fsType.startsWith('fuse.');
}

const BUSY_RETRIES = 5;
const BUSY_RETRY_MS = 100;

/**
 * A plain unmount first, retried briefly because a reader may just be
 * closing a file. A lazy unmount is the last resort: the tree disappears
 * from the namespace at once and the kernel lets go when the last open file
 * closes, which is better than leaving a restore point mounted for ever.
 * Returns a warning when it had to be lazy.
 */
export async function unmountPath(mount: HostMount): Promise<string | undefined> {
  const fuse = isFuseMount(mount);
  let lastError: unknown;
  for (let attempt = 0; attempt < BUSY_RETRIES; attempt++) {
    try {
      if (fuse) await runTool('fusermount3', ['-u', mount.mountPoint]);
      else await runTool('umount', [mount.mountPoint]);
      return undefined;
    } catch (error) {
      lastError = error;
      if (!(await isMounted(mount.mountPoint))) return undefined;
      await new Promise((resolve) => setTimeout(resolve, BUSY_RETRY_MS));
    }
  }
  if (fuse) await runTool('fusermount3', ['-u', '-z', mount.mountPoint]);
  else await runTool('umount', ['-l', mount.mountPoint]);
  return `${mount.mountPoint} was busy and was unmounted lazily (${lastError instanceof Error ? lastError.message : String(lastError)})`;
}

export async function isMounted(mountPoint: string): Promise<boolean> {
  return (await readHostMounts()).some((m) => m.mountPoint === mountPoint);
}
