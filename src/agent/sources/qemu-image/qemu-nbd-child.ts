import { spawn, type ChildProcess } from 'node:child_process';
import { readFile } from 'node:fs/promises';

export interface ChildExit {
  code: number | null;
  signal: NodeJS.Signals | null;
}

export interface QemuNbdStartSpec {
  binary: string;
  args: string[];
  /** Passed as `--pid-file`; qemu-nbd writes it once the image is open and the export exists. */
  pidFile: string;
  readyTimeoutMs: number;
}

const STDERR_TAIL_BYTES = 4096;
const READY_POLL_MS = 3;
/** After SIGKILL only a task stuck in the kernel (D state) can linger; do not wait forever for it. */
const AFTER_SIGKILL_MS = 5_000;

/** Every qemu-nbd this module started and that has not exited yet; killed if the agent process exits. */
const live = new Set<ChildProcess>();
let exitHookInstalled = false;
function installExitHook(): void {
  if (exitHookInstalled) return;
  exitHookInstalled = true;
  // 'exit' handlers must be synchronous: a plain SIGKILL is all that can be done there.
  // A read-only qemu-nbd killed this way leaves nothing behind in the image.
  process.on('exit', () => {
    for (const child of live) {
      try {
        child.kill('SIGKILL');
      } catch {
        // already gone
      }
    }
  });
}

/**
 * One qemu-nbd process, kept as our child (no `--fork`): its exit is an event,
 * its stderr a pipe we keep the tail of, and stop() waits until it has really
 * gone.
 */
export class QemuNbdChild {
  readonly exited: Promise<ChildExit>;
  private exitStatus?: ChildExit;
  private tail = '';
  private stopping?: Promise<ChildExit>;

  private constructor(private readonly child: ChildProcess) {
    live.add(child);
    child.stderr?.on('data', (chunk: Buffer) => {
      this.tail = (this.tail + chunk.toString()).slice(-STDERR_TAIL_BYTES);
    });
    this.exited = new Promise<ChildExit>((resolve) => {
      const done = (status: ChildExit): void => {
        live.delete(child);
        this.exitStatus = status;
        resolve(status);
      };
      child.once('exit', (code, signal) => done({ code, signal }));
      // spawn failure (ENOENT, EACCES): no 'exit' follows an 'error' for a process that never ran.
      child.once('error', (error) => {
        if (child.pid === undefined) {
          this.tail += `cannot run qemu-nbd: ${error.message}`;
          done({ code: null, signal: null });
        }
      });
    });
  }

  get pid(): number | undefined {
    return this.child.pid;
  }

  get stderrTail(): string {
    return this.tail;
  }

  hasExited(): boolean {
    return this.exitStatus !== undefined;
  }

  /**
   * Spawns qemu-nbd and resolves once it serves (its pid file names it), or
   * rejects with qemu-nbd's own message if it exits first (image locked,
   * bitmap missing, ...). On timeout the child is killed before rejecting.
   */
  static async start(spec: QemuNbdStartSpec): Promise<QemuNbdChild> {
    installExitHook();
    const child = spawn(spec.binary, [...spec.args, `--pid-file=${spec.pidFile}`], {
      stdio: ['ignore', 'ignore', 'pipe'],
      env: { ...process.env, LC_ALL: 'C' },
    });
    const handle = new QemuNbdChild(child);
    const began = Date.now();
    for (;;) {
      if (handle.hasExited()) throw new QemuNbdStartError(handle.exitStatus as ChildExit, handle.tail);
      if (child.pid !== undefined && (await readPid(spec.pidFile)) === child.pid) return handle;
      if (Date.now() - began > spec.readyTimeoutMs) {
        await handle.stop(1_000);
        throw new QemuNbdStartError(handle.exitStatus as ChildExit, `${handle.tail}\n(did not become ready within ${spec.readyTimeoutMs} ms)`.trim());
      }
      await Promise.race([handle.exited, new Promise((r) => setTimeout(r, READY_POLL_MS))]);
    }
  }

  /** SIGTERM, then SIGKILL after graceMs; resolves when the process has exited. Idempotent. */
  stop(graceMs: number): Promise<ChildExit> {
    if (!this.stopping) this.stopping = this.terminate(graceMs);
    return this.stopping;
  }

  private async terminate(graceMs: number): Promise<ChildExit> {
    if (this.hasExited()) return this.exited;
    this.child.kill('SIGTERM');
    if (await exitsWithin(this.exited, graceMs)) return this.exited;
    this.child.kill('SIGKILL');
    if (await exitsWithin(this.exited, AFTER_SIGKILL_MS)) return this.exited;
    throw new Error(`qemu-nbd pid ${this.child.pid} is still there ${AFTER_SIGKILL_MS} ms after SIGKILL (stuck in the kernel?)`);
  }
}

export class QemuNbdStartError extends Error {
  constructor(
    readonly exit: ChildExit | undefined,
    readonly stderr: string,
  ) {
    const how = exit ? (exit.signal ? `killed by ${exit.signal}` : exit.code === null ? 'could not be started' : `exited with code ${exit.code}`) : 'did not start';
    super(`qemu-nbd ${how}: ${stderr.trim() || '(no message)'}`);
    this.name = 'QemuNbdStartError';
  }
}

async function readPid(file: string): Promise<number | undefined> {
  try {
    const text = (await readFile(file, 'utf8')).trim();
    return text ? Number(text) : undefined;
  } catch {
    return undefined;
  }
}

async function exitsWithin(exited: Promise<unknown>, ms: number): Promise<boolean> {
  let timer: NodeJS.Timeout | undefined;
  try {
    return await Promise.race([exited.then(() => true), new Promise<boolean>((r) => (timer = setTimeout(() => r(false), ms)))]);
  } finally {
    clearTimeout(timer);
  }
}
