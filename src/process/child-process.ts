import { ChildProcess, spawn } from 'node:child_process';
import { closeSync, openSync } from 'node:fs';
import { decodeWaitStatus, ExitStatus, isRunningState, readProcStat } from './proc';

export type { ExitStatus } from './proc';

/** A long-running process we watch, whether our own child or adopted from an earlier run. */
export interface ProcessHandle {
  readonly pid: number;
  readonly adopted: boolean;
  /** Resolves once the process no longer runs (its fds, so its ports, sockets and image locks, are released). Never rejects. */
  readonly exited: Promise<ExitStatus>;
  hasExited(): boolean;
  /** Ignored once the process has exited, so a reused pid is never hit. */
  signal(signal: NodeJS.Signals): void;
}

export interface SpawnChildOptions {
  /**
   * true: own session and process group, and not holding our event loop open.
   * A Ctrl-C to our terminal does not reach it and it outlives a SIGKILL of
   * ours (exports and mounts that a later run adopts or cleans up).
   * false: it dies with us: SIGKILLed when this process exits.
   */
  detached: boolean;
  /** stdout and stderr go to this file (truncated), not a pipe: a child outliving us cannot hit EPIPE, and its last words can still be read. */
  logFile?: string;
  /** Default '/', so the child never pins a directory someone may want to unmount or delete. */
  cwd?: string;
  /** Added to our environment; a name given as undefined is left out of the child's. */
  env?: Record<string, string | undefined>;
  /** Run as this user (PostgreSQL refuses to run as root). */
  user?: { uid: number; gid: number };
  /** A detached child we stop ourselves at the very end (the embedded database): our event loop keeps running while it runs, so a stop is awaited to its end. */
  holdsEventLoop?: boolean;
}

/** Children that die with us; 'exit' handlers must be synchronous, so a plain SIGKILL is all that can be done there. */
const diesWithUs = new Set<ChildProcess>();
let exitHookInstalled = false;
export function killOnExit(child: ChildProcess): void {
  if (!exitHookInstalled) {
    exitHookInstalled = true;
    process.on('exit', () => {
      for (const c of diesWithUs) {
        try {
          c.kill('SIGKILL');
        } catch {
          // already gone
        }
      }
    });
  }
  diesWithUs.add(child);
  child.once('exit', () => diesWithUs.delete(child));
}

/** Our own child: Node reaps it and emits 'exit' at once, so a death is known within milliseconds and no zombie is left. */
export class ChildProcessHandle implements ProcessHandle {
  readonly adopted = false;
  readonly exited: Promise<ExitStatus>;
  /** Resolves with the reason when the program could not be started; undefined when it was. */
  readonly spawnError: Promise<Error> | undefined;
  private done = false;

  private constructor(private readonly child: ChildProcess) {
    let resolveExit!: (status: ExitStatus) => void;
    this.exited = new Promise((resolve) => (resolveExit = resolve));
    child.once('exit', (code, signal) => {
      this.done = true;
      resolveExit({ code, signal });
    });
    if (child.pid === undefined) {
      // No 'exit' follows the 'error' of a process that never ran.
      this.done = true;
      this.spawnError = new Promise((resolve) => child.once('error', resolve));
      void this.spawnError.then((error) => resolveExit({ code: null, signal: null, spawnError: error.message }));
    }
  }

  /**
   * Synchronous, so the caller can track the process before anything else
   * runs. If the binary cannot be run there is no pid and Node reports why on
   * the next tick: spawnError then resolves with it.
   */
  static spawn(program: string, args: readonly string[], options: SpawnChildOptions): ChildProcessHandle {
    const logFd = options.logFile === undefined ? undefined : openSync(options.logFile, 'w', 0o600);
    try {
      const output = logFd ?? 'ignore';
      const child = spawn(program, [...args], {
        detached: options.detached,
        stdio: ['ignore', output, output],
        cwd: options.cwd ?? '/',
        env: { ...process.env, ...options.env },
        uid: options.user?.uid,
        gid: options.user?.gid,
      });
      if (options.detached && !options.holdsEventLoop) child.unref();
      else if (child.pid !== undefined) killOnExit(child);
      return new ChildProcessHandle(child);
    } finally {
      if (logFd !== undefined) closeSync(logFd); // the child has its own copy
    }
  }

  /** 0 when the program could not be started (spawnError says why). */
  get pid(): number {
    return this.child.pid ?? 0;
  }

  hasExited(): boolean {
    return this.done;
  }

  signal(signal: NodeJS.Signals): void {
    if (!this.done) this.child.kill(signal);
  }
}

/** While nobody is stopping it, an adopted process is looked at this often. */
const ADOPTED_POLL_MS = 250;
/** After we signalled it, so a stop returns soon after the process is gone. */
const STOPPING_POLL_MS = 20;

/**
 * A process from an earlier run. It is not our child, so there is no exit
 * event: /proc/PID/stat is polled. Once it dies it is reparented to PID 1
 * (which here reaps only every ~2 s), so a zombie counts as exited and its
 * exit_code field supplies the status; if it has already been reaped the
 * status is unknown. The start time guards against the pid being reused.
 */
export class AdoptedProcessHandle implements ProcessHandle {
  readonly adopted = true;
  readonly exited: Promise<ExitStatus>;
  private done = false;
  private timer: NodeJS.Timeout | undefined;
  private resolveExit!: (status: ExitStatus) => void;
  private pollMs = ADOPTED_POLL_MS;

  constructor(readonly pid: number, private readonly startTime: string) {
    this.exited = new Promise((resolve) => (this.resolveExit = resolve));
    this.schedule();
  }

  hasExited(): boolean {
    return this.done;
  }

  signal(signal: NodeJS.Signals): void {
    if (this.done || this.check()) return;
    try {
      process.kill(this.pid, signal);
    } catch (error) {
      if ((error as NodeJS.ErrnoException).code !== 'ESRCH') throw error;
    }
    this.pollMs = STOPPING_POLL_MS;
    this.schedule();
  }

  private schedule(): void {
    if (this.timer) clearTimeout(this.timer);
    if (this.done) return;
    this.timer = setTimeout(() => {
      if (!this.check()) this.schedule();
    }, this.pollMs);
    this.timer.unref();
  }

  /** True (and exited resolved) once the process is gone. */
  private check(): boolean {
    if (this.done) return true;
    const stat = readProcStat(this.pid);
    let status: ExitStatus | undefined;
    if (!stat || stat.startTime !== this.startTime) status = { code: null, signal: null };
    else if (!isRunningState(stat.state)) status = decodeWaitStatus(stat.exitStatus);
    if (!status) return false;
    this.done = true;
    if (this.timer) clearTimeout(this.timer);
    this.resolveExit(status);
    return true;
  }
}

/** After SIGKILL only a task stuck in the kernel (D state, e.g. dead storage) can linger; we do not wait forever for it. */
const AFTER_SIGKILL_MS = 5_000;

/**
 * SIGTERM lets a server finish cleanly (qemu-nbd flushes qcow2 metadata and
 * stores persistent bitmaps). SIGKILL only after graceMs: for a writable
 * qemu-nbd it leaves a bitmap marked in-use, which qemu then refuses as
 * inconsistent. `what` names the process in messages.
 */
export async function terminateProcess(handle: ProcessHandle, graceMs: number, what: string, warn: (message: string) => void = () => undefined): Promise<ExitStatus> {
  if (!handle.hasExited()) {
    handle.signal('SIGTERM');
    if (!(await exitsWithin(handle.exited, graceMs))) {
      warn(`${what} (pid ${handle.pid}) did not exit within ${graceMs} ms of SIGTERM; sending SIGKILL`);
      handle.signal('SIGKILL');
      if (!(await exitsWithin(handle.exited, AFTER_SIGKILL_MS))) {
        throw new Error(`${what} (pid ${handle.pid}) is still there ${AFTER_SIGKILL_MS} ms after SIGKILL (stuck in the kernel?)`);
      }
    }
  }
  return handle.exited;
}

export async function exitsWithin(exited: Promise<unknown>, ms: number): Promise<boolean> {
  let timer: NodeJS.Timeout | undefined;
  const timeout = new Promise<false>((resolve) => (timer = setTimeout(() => resolve(false), ms)));
  try {
    return await Promise.race([exited.then(() => true as const), timeout]);
  } finally {
    clearTimeout(timer);
  }
}
