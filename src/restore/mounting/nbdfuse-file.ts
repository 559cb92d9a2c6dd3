import { promises as fs } from 'node:fs';
import { awaitExitOrStop, HelperChild } from './helper-processes';
import { isMounted, readHostMounts, unmountPath } from './host-mounts';
import { waitForHelperReady } from './readiness';
import { EXPORT_NAME, workDirLayout } from './work-dir-layout';

/** Percent-encodes the socket path for the URI query (libnbd decodes it), keeping '/' readable. */
export function nbdUnixUri(socketPath: string): string {
  const encoded = socketPath.split('/').map(encodeURIComponent).join('/');
  return `nbd+unix:///${EXPORT_NAME}?socket=${encoded}`;
}

/**
 * nbdfuse stands in for the kernel NBD client this host lacks: it turns the
 * export into one plain file that losetup can attach. -r serves the file
 * read-only and refuses writes; -o ro makes the FUSE mount itself read-only
 * so the kernel refuses them first. -P writes the pid file only once it serves,
 * which is our readiness signal. nbdfuse stays in the foreground, so it is
 * our child.
 */
export function nbdfuseArgs(workDir: string): string[] {
  return ['-r', '-o', 'ro', '-P', workDirLayout.nbdfusePidFile(workDir), workDirLayout.diskFile(workDir), nbdUnixUri(workDirLayout.socket(workDir))];
}

async function servesDiskFile(workDir: string): Promise<boolean> {
  try {
    await fs.access(workDirLayout.nbdfusePidFile(workDir));
  } catch {
    return false;
  }
  return isMounted(workDirLayout.nbdMountDir(workDir));
}

export async function startNbdfuse(workDir: string, timeoutMs: number): Promise<HelperChild> {
  await fs.mkdir(workDirLayout.nbdMountDir(workDir), { recursive: true });
  const helper = HelperChild.spawn('nbdfuse', nbdfuseArgs(workDir), workDirLayout.nbdfuseLog(workDir));
  try {
    await waitForHelperReady(helper, 'nbdfuse', () => servesDiskFile(workDir), timeoutMs);
  } catch (error) {
    await stopNbdfuse(workDir, helper, 1_000).catch(() => undefined);
    throw error;
  }
  return helper;
}

/**
 * The nbdfuse manual asks for fusermount3 -u rather than a signal: it lets
 * nbdfuse finish in-flight requests and exit by itself. Signals only if it
 * lingers, or at once if the unmount had to be lazy (loop devices still
 * held by readers keep the file open, and nbdfuse would keep serving them).
 */
export async function stopNbdfuse(workDir: string, helper: HelperChild | undefined, graceMs: number): Promise<string | undefined> {
  helper?.markExpectedExit();
  const mountDir = workDirLayout.nbdMountDir(workDir);
  const mount = (await readHostMounts()).find((m) => m.mountPoint === mountDir);
  const warning = mount ? await unmountPath(mount) : undefined;
  if (helper) {
    if (warning) await helper.stop(graceMs);
    else await awaitExitOrStop(helper, graceMs);
  }
  return warning;
}
