import { promises as fs } from 'node:fs';
import { join, relative } from 'node:path';
import { argvPaths, helperProcessesWithin, HelperChild, terminateForeignProcess, waitForHelpersToLeave } from './helper-processes';
import { mountsWithin, unmountPath } from './host-mounts';
import { detachLoop, loopDevicesBackedWithin } from './loop-devices';
import type { ChainExport } from './chain-export';
import { stopNbdfuse } from './nbdfuse-file';
import { isWithin, workDirLayout } from './work-dir-layout';

/** What a live mount knows about its own helpers; after a crash nothing is known and everything is found by path. */
export interface KnownResources {
  qemuNbd?: HelperChild;
  /** The hub's own server of the point's chain, where it serves instead of qemu-nbd; it ends with the hub. */
  chainExport?: ChainExport;
  nbdfuse?: HelperChild;
  loopDevices?: readonly string[];
}

/** After a lazy unmount a FUSE daemon keeps serving open files; it gets this long before SIGTERM. */
const LAZY_WAIT_MS = 100;

export interface TeardownOptions {
  /** How long a helper gets to exit by itself before SIGTERM, and again before SIGKILL. */
  graceMs: number;
}

/**
 * Takes one work dir down from the top of the stack to the bottom, each
 * layer only once nothing above it uses it: volume mounts (kernel and FUSE),
 * their loop devices, nbdfuse, qemu-nbd, the work dir's own mount, then the directory. Every step
 * looks at the host (/proc/mounts, losetup, /proc) rather than at what we
 * believe we started, so the same code finishes a half-done mount, repeats
 * an unmount, or cleans up after a crash. Returns warnings (lazy unmounts).
 * A mount still in use (a download in progress) is unmounted lazily and its
 * FUSE servers are stopped: the reader gets I/O errors, and the kernel
 * frees the loop devices when the reader closes its files.
 */
export async function teardownWorkDir(workDir: string, known: KnownResources, options: TeardownOptions): Promise<string[]> {
  const warnings: string[] = [];
  const nbdMountDir = workDirLayout.nbdMountDir(workDir);
  const volumesDir = workDirLayout.volumesDir(workDir);

  let lazy = false;
  for (const mount of await mountsWithin(workDir)) {
    // the work dir's own mount (shareMount) holds every other one: it goes last
    if (isWithin(nbdMountDir, mount.mountPoint) || mount.mountPoint === workDir) continue;
    const warning = await unmountPath(mount);
    if (warning) warnings.push(warning);
    lazy ||= warning !== undefined;
  }
  // fusefat and ntfs-3g exit once their mount is gone; the loop devices they hold are only free after that.
  await waitForHelpersToLeave(volumesDir, lazy ? LAZY_WAIT_MS : options.graceMs, options.graceMs);

  const loops = new Set([...(known.loopDevices ?? []), ...(await loopDevicesBackedWithin(workDir)).map((d) => d.name)]);
  for (const device of loops) await detachLoop(device);

  const nbdWarning = await stopNbdfuse(workDir, known.nbdfuse, options.graceMs);
  if (nbdWarning) warnings.push(nbdWarning);
  await waitForHelpersToLeave(nbdMountDir, nbdWarning ? LAZY_WAIT_MS : options.graceMs, options.graceMs);

  if (known.qemuNbd) await known.qemuNbd.stop(options.graceMs);
  if (known.chainExport) await known.chainExport.stop();
  for (const proc of await helperProcessesWithin(workDir)) await terminateForeignProcess(proc, options.graceMs);

  for (const mount of await mountsWithin(workDir)) {
    const warning = await unmountPath(mount);
    if (warning) warnings.push(warning);
  }
  const remaining = await mountsWithin(workDir);
  if (remaining.length) throw new Error(`still mounted under ${workDir}: ${remaining.map((m) => m.mountPoint).join(', ')}; not removing it`);
  // Never recursive-delete across a mount point: checked just above, and the image side is read-only anyway.
  await fs.rm(workDir, { recursive: true, force: true });
  return warnings;
}

/**
 * The work dirs a crashed run left under root: every subdirectory, plus the
 * top-level dir of any mount, loop device or helper process that still
 * points below root even though its directory is gone (someone deleted it
 * under a live mount).
 */
export async function leftoverWorkDirs(root: string): Promise<string[]> {
  const dirs = new Set<string>();
  for (const entry of await fs.readdir(root, { withFileTypes: true }).catch(() => [])) {
    if (entry.isDirectory()) dirs.add(join(root, entry.name));
  }
  const topLevel = (path: string) => {
    const first = relative(root, path).split('/')[0];
    if (first && first !== '..') dirs.add(join(root, first));
  };
  for (const mount of await mountsWithin(root)) topLevel(mount.mountPoint);
  for (const loop of await loopDevicesBackedWithin(root)) topLevel(loop.backFile);
  for (const proc of await helperProcessesWithin(root)) {
    for (const path of argvPaths(proc.argv)) if (isWithin(root, path)) topLevel(path);
  }
  return [...dirs].sort();
}
