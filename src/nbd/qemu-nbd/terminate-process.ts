import type { ExitStatus } from './proc';
import type { ProcessHandle } from './process-handle';

/** After SIGKILL only a task stuck in the kernel (D state, e.g. dead storage) can linger; we do not wait forever for it. */
const AFTER_SIGKILL_MS = 5_000;

/**
 * SIGTERM lets qemu-nbd close the image cleanly (qcow2 metadata flushed,
 * persistent bitmaps stored). SIGKILL only after graceMs: it leaves a bitmap
 * marked in-use, which qemu then refuses as inconsistent.
 */
export async function terminateProcess(handle: ProcessHandle, graceMs: number, what: string, warn: (message: string) => void): Promise<ExitStatus> {
  if (!handle.hasExited()) {
    handle.signal('SIGTERM');
    if (!(await exitsWithin(handle, graceMs))) {
      warn(`${what} (pid ${handle.pid}) did not exit within ${graceMs} ms of SIGTERM; sending SIGKILL (its dirty bitmaps will be left in-use)`);
      handle.signal('SIGKILL');
      if (!(await exitsWithin(handle, AFTER_SIGKILL_MS))) {
        throw new Error(`${what} (pid ${handle.pid}) is still there ${AFTER_SIGKILL_MS} ms after SIGKILL (stuck in the kernel?)`);
      }
    }
  }
  return handle.exited;
}

async function exitsWithin(handle: ProcessHandle, ms: number): Promise<boolean> {
  let timer: NodeJS.Timeout | undefined;
  const timeout = new Promise<false>((resolve) => (timer = setTimeout(() => resolve(false), ms)));
  try {
    return await Promise.race([handle.exited.then(() => true), timeout]);
  } finally {
    clearTimeout(timer);
  }
}

export function describeExit(status: ExitStatus): string {
  if (status.signal) return `on signal ${status.signal}`;
  if (status.code !== null) return `with code ${status.code}`;
  return 'with an unknown status';
}
