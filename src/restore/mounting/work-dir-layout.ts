import { join } from 'node:path';

/**
 * Everything one mount creates lives under its workDir, named by this
 * layout: leftover cleanup after a crash finds mounts, loop devices and
 * helper processes by these paths alone, with no state file to trust.
 */
export const workDirLayout = {
  socket: (workDir: string) => join(workDir, 'qemu-nbd.sock'),
  qemuNbdLog: (workDir: string) => join(workDir, 'qemu-nbd.log'),
  qemuNbdPidFile: (workDir: string) => join(workDir, 'qemu-nbd.pid'),
  /** nbdfuse's FUSE mount point; the whole disk appears inside as one read-only file. */
  nbdMountDir: (workDir: string) => join(workDir, 'nbd'),
  diskFile: (workDir: string) => join(workDir, 'nbd', 'disk'),
  nbdfusePidFile: (workDir: string) => join(workDir, 'nbdfuse.pid'),
  nbdfuseLog: (workDir: string) => join(workDir, 'nbdfuse.log'),
  volumesDir: (workDir: string) => join(workDir, 'volumes'),
  volumeDir: (workDir: string, volumeId: string) => join(workDir, 'volumes', volumeId),
};

/** Export name inside qemu-nbd; one export per process, so it never needs to vary. */
export const EXPORT_NAME = 'rp';

/** True when `path` is `dir` itself or lies below it (a plain prefix test would match /a/bc for /a/b). */
export function isWithin(dir: string, path: string): boolean {
  const base = dir.endsWith('/') ? dir.slice(0, -1) : dir;
  return path === base || path.startsWith(`${base}/`);
}
