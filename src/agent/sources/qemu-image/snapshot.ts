import { rm } from 'node:fs/promises';
import { terminateProcess, type ChildProcessHandle } from '../../../process/child-process';
import { readLogTail } from '../../../process/log-tail';
import type { Snapshot, SnapshotDisk } from './types';

/** One disk's qemu-nbd, kept as our child, and the log its stderr goes to. */
export interface ExportChild {
  handle: ChildProcessHandle;
  logFile: string;
}

/**
 * A consistent view of every disk of a powered-off VM: one read-only qemu-nbd
 * per disk, all started before any byte is copied. While it is open the images
 * are locked against writers, so the VM cannot be started underneath it.
 */
export class QemuNbdSnapshot implements Snapshot {
  private closing?: Promise<void>;

  constructor(
    readonly snapshotId: string,
    readonly vmId: string,
    readonly disks: SnapshotDisk[],
    /** The private directory holding sockets, pid files and qemu-nbd's logs. */
    readonly dir: string,
    private readonly children: ExportChild[],
    private readonly stopTimeoutMs: number,
    private readonly onClosed: (snapshot: QemuNbdSnapshot) => void,
  ) {}

  get closed(): boolean {
    return this.closing !== undefined;
  }

  /** Pids of the qemu-nbd processes still running (diagnostics and tests). */
  get pids(): number[] {
    return this.children.filter((c) => !c.handle.hasExited()).map((c) => c.handle.pid);
  }

  /** Disks whose qemu-nbd has exited although the snapshot is not closed: their copies cannot succeed. */
  deadDisks(): Array<{ diskId: string; stderr: string }> {
    if (this.closing) return [];
    return this.children.flatMap((c, i) => (c.handle.hasExited() ? [{ diskId: this.disks[i].diskId, stderr: readLogTail(c.logFile).trim() }] : []));
  }

  close(): Promise<void> {
    if (!this.closing) this.closing = closeAll(this.children, this.dir, this.stopTimeoutMs).finally(() => this.onClosed(this));
    return this.closing;
  }
}

/** Stops every child (in parallel), then removes the directory; reports the first failure after doing all it can. */
export async function closeAll(children: ExportChild[], dir: string, stopTimeoutMs: number): Promise<void> {
  const results = await Promise.allSettled(children.map((c) => terminateProcess(c.handle, stopTimeoutMs, `qemu-nbd of ${c.logFile}`)));
  await rm(dir, { recursive: true, force: true });
  const failed = results.find((r): r is PromiseRejectedResult => r.status === 'rejected');
  if (failed) throw failed.reason;
}
