import { ChildProcess, spawn } from 'node:child_process';
import { decodeWaitStatus, ExitStatus, isRunningState, readProcStat } from './proc';

/** A qemu-nbd process we watch, whether our own child or adopted from an earlier run. */
export interface ProcessHandle {
  readonly pid: number;
  readonly adopted: boolean;
  /** Resolves once the process no longer runs (its fds, so its port and image lock, are released). Never rejects. */
  readonly exited: Promise<ExitStatus>;
  hasExited(): boolean;
  /** Ignored once the process has exited, so a reused pid is never hit. */
  signal(signal: NodeJS.Signals): void;
}

/**
 * Our own child: Node reaps it and emits 'exit' at once, so a death is known
 * within milliseconds and no zombie is left. detached puts it in its own
 * session and process group: a Ctrl-C (SIGINT to the terminal's foreground
 * group) or a terminal hang-up does not reach it, and it outlives a hub SIGKILL.
 */
export class ChildProcessHandle implements ProcessHandle {
  readonly adopted = false;
  readonly exited: Promise<ExitStatus>;
  private done = false;
  private readonly failure: Promise<Error> | undefined;

  private constructor(private readonly child: ChildProcess) {
    let resolveExit!: (status: ExitStatus) => void;
    this.exited = new Promise((resolve) => (resolveExit = resolve));
    child.once('exit', (code, signal) => {
      this.done = true;
      resolveExit({ code, signal });
    });
    if (child.pid === undefined) {
      this.done = true;
      this.failure = new Promise((resolve) => child.once('error', resolve));
      void this.failure.then(() => resolveExit({ code: null, signal: null }));
    }
  }

  get pid(): number {
    return this.child.pid as number;
  }

  /**
   * Synchronous, so the caller can track the process before anything else
   * runs. If the binary cannot be run (ENOENT, EACCES...) there is no pid and
   * Node reports why on the next tick: spawnError then resolves with it.
   */
  static spawn(binary: string, args: string[], stderrFd: number): ChildProcessHandle {
    const child = spawn(binary, args, { detached: true, stdio: ['ignore', 'ignore', stderrFd], cwd: '/' });
    // The hub may exit (or be restarted) while exports keep running for a later adopt().
    child.unref();
    return new ChildProcessHandle(child);
  }

  get spawnError(): Promise<Error> | undefined {
    return this.failure;
  }

  hasExited(): boolean {
    return this.done;
  }

  signal(signal: NodeJS.Signals): void {
    if (!this.done) this.child.kill(signal);
  }
}

/** While nobody is stopping it, an adopted export is looked at this often (the brief allows up to 500 ms). */
const ADOPTED_POLL_MS = 250;
/** After we signalled it, so stop() returns soon after the process is gone. */
const STOPPING_POLL_MS = 20;

/**
 * A process from an earlier hub run. It is not our child, so there is no exit
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
