import { promises as fs } from 'node:fs';
import { connect } from 'node:net';
import { HelperChild } from './helper-processes';
import { waitForHelperReady } from './readiness';
import { EXPORT_NAME, workDirLayout } from './work-dir-layout';

/**
 * -r: the export refuses writes, and qemu opens every file of the chain
 * read-only. Its image locks still forbid writers: while a point is
 * mounted, a writer or a merge (qemu-img commit) on any file of its chain
 * fails with "Failed to get write lock" instead of changing what we read.
 * --persistent: without it qemu-nbd exits when its first client
 * disconnects, and our readiness probe is a client.
 * --shared=8: nbdfuse opens several connections (multi-conn), plus probes.
 * A Unix socket in the work dir: no port to lease, and nothing outside the
 * host can reach it.
 */
export function qemuNbdArgs(imageFile: string, socketPath: string): string[] {
  return ['-r', '-f', 'qcow2', '--persistent', '--shared=8', '-k', socketPath, '-x', EXPORT_NAME, imageFile];
}

const NBD_MAGIC = Buffer.from('NBDMAGIC', 'ascii');
/** One probe waits this long for the greeting; the readiness loop retries until its own deadline. */
const GREETING_WAIT_MS = 1_000;

/**
 * qemu-nbd listens on its socket before it has opened the image, so an
 * accepted connection proves little (an image that fails to open still
 * accepts one, then exits). It sends the NBD greeting only from its main
 * loop, after the image is open: that is the readiness signal. Hanging up
 * right after the greeting is safe because the server is persistent.
 */
function receivesNbdGreeting(socketPath: string): Promise<boolean> {
  return new Promise((resolve) => {
    let received = Buffer.alloc(0);
    const socket = connect(socketPath);
    const finish = (ready: boolean) => {
      clearTimeout(timer);
      socket.destroy();
      resolve(ready);
    };
    const timer = setTimeout(() => finish(false), GREETING_WAIT_MS);
    socket.on('data', (chunk: Buffer) => {
      received = Buffer.concat([received, chunk]);
      if (received.length >= NBD_MAGIC.length) finish(received.subarray(0, NBD_MAGIC.length).equals(NBD_MAGIC));
    });
    socket.once('error', () => finish(false));
    socket.once('close', () => finish(false));
  });
}

async function exists(path: string): Promise<boolean> {
  try {
    await fs.lstat(path);
    return true;
  } catch {
    return false;
  }
}

export async function startReadOnlyExport(imageFile: string, workDir: string, timeoutMs: number): Promise<HelperChild> {
  const socketPath = workDirLayout.socket(workDir);
  const helper = HelperChild.spawn('qemu-nbd', qemuNbdArgs(imageFile, socketPath), workDirLayout.qemuNbdLog(workDir));
  try {
    await waitForHelperReady(helper, 'qemu-nbd', async () => (await exists(socketPath)) && (await receivesNbdGreeting(socketPath)), timeoutMs);
  } catch (error) {
    await helper.stop(1_000).catch(() => undefined);
    throw error;
  }
  return helper;
}
