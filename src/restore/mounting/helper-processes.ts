import { promises as fs } from 'node:fs';
import { AdoptedProcessHandle, ChildProcessHandle, exitsWithin, terminateProcess } from '../../process/child-process';
import { ExitStatus, isRunningState, readProcStat } from '../../process/proc';
import { runsChunkNbd } from '../../repositories/chunks/chunk-nbd/chunk-nbd-args';
import { isWithin } from './work-dir-layout';

/** Programs a mount starts; leftover cleanup never signals anything else, whatever its command line says. */
export const HELPER_PROGRAMS = ['qemu-nbd', 'nbdfuse', 'fusefat', 'ntfs-3g'] as const;

export interface HelperProcess {
  pid: number;
  program: string;
  argv: string[];
  /** Clock ticks after boot; with the pid it identifies one process even if the pid is reused later. */
  startTime: string;
}

export type { ExitStatus } from '../../process/proc';

async function readProc(pid: number, file: string): Promise<string | undefined> {
  try {
    return await fs.readFile(`/proc/${pid}/${file}`, 'utf8');
  } catch {
    return undefined;
  }
}

/** Paths a helper's arguments name: plain arguments, and the socket= of an NBD URI. */
export function argvPaths(argv: readonly string[]): string[] {
  return argv.map((arg) => {
    const socket = /[?&]socket=([^&]+)/.exec(arg);
    if (!socket) return arg;
    try {
      return decodeURIComponent(socket[1]);
    } catch {
      return socket[1];
    }
  });
}

/** Live helper processes (by program name) whose arguments point into dir. */
export async function helperProcessesWithin(dir: string): Promise<HelperProcess[]> {
  const found: HelperProcess[] = [];
  for (const entry of await fs.readdir('/proc')) {
    if (!/^\d+$/.test(entry)) continue;
    const pid = Number(entry);
    if (pid === process.pid) continue;
    const comm = (await readProc(pid, 'comm'))?.trim();
    if (!comm || (!(HELPER_PROGRAMS as readonly string[]).includes(comm) && comm !== 'node')) continue;
    const cmdline = await readProc(pid, 'cmdline');
    // A zombie has closed every fd (mounts served, sockets, image locks are gone); only its parent's wait is missing.
    const stat = readProcStat(pid);
    if (cmdline === undefined || stat === undefined || !isRunningState(stat.state)) continue;
    const argv = cmdline.split('\0');
    if (argv[argv.length - 1] === '') argv.pop();
    // of node processes, only the chunk store's server (which serves a chunk point in qemu-nbd's place) is a mount's helper
    if (comm === 'node' && !runsChunkNbd(argv.slice(1))) continue;
    const program = comm === 'node' ? 'chunk-nbd' : comm;
    if (argvPaths(argv).some((path) => isWithin(dir, path))) found.push({ pid, program, argv, startTime: stat.startTime });
  }
  return found;
}

async function waitUntil(predicate: () => Promise<boolean>, timeoutMs: number, pollMs = 20): Promise<boolean> {
  const deadline = Date.now() + timeoutMs;
  for (;;) {
    if (await predicate()) return true;
    if (Date.now() >= deadline) return false;
    await new Promise((resolve) => setTimeout(resolve, pollMs));
  }
}

/**
 * For processes that are not our children (daemonised FUSE drivers, or
 * anything left by an earlier hub run): SIGTERM, then SIGKILL after graceMs.
 * The start time is re-checked before every signal so a recycled pid is
 * never hit.
 */
export async function terminateForeignProcess(proc: HelperProcess, graceMs: number): Promise<void> {
  await terminateProcess(new AdoptedProcessHandle(proc.pid, proc.startTime), graceMs, proc.program);
}

/**
 * Waits up to waitMs for FUSE daemons that a fusermount -u told to exit,
 * then signals any that linger (SIGTERM, SIGKILL after killGraceMs). After
 * a lazy unmount waitMs is short: the daemon keeps serving the open files
 * that made the mount busy and would not leave by itself.
 */
export async function waitForHelpersToLeave(dir: string, waitMs: number, killGraceMs: number): Promise<void> {
  if (await waitUntil(async () => (await helperProcessesWithin(dir)).length === 0, waitMs)) return;
  for (const proc of await helperProcessesWithin(dir)) await terminateForeignProcess(proc, killGraceMs);
}

/**
 * A long-running helper (qemu-nbd, nbdfuse) kept as our own child, so its
 * death is known at once and no zombie is left. detached: its own process
 * group, so a Ctrl-C aimed at the hub does not tear the chain down out of
 * order (a dead qemu-nbd under a mounted filesystem); the hub can still
 * exit, and cleanupLeftovers takes care of what it leaves.
 * Output goes to a log file in the work dir for operators and error messages.
 */
export class HelperChild {
  private expectedExit = false;

  constructor(
    readonly program: string,
    private readonly handle: ChildProcessHandle,
    readonly logFile: string,
  ) {}

  static spawn(program: string, args: string[], logFile: string): HelperChild {
    return new HelperChild(program, ChildProcessHandle.spawn(program, args, { detached: true, logFile, env: { LC_ALL: 'C' } }), logFile);
  }

  get exited(): Promise<ExitStatus> {
    return this.handle.exited;
  }

  hasExited(): boolean {
    return this.handle.hasExited();
  }

  /** True once stop() was asked for, so an exit afterwards is not reported as a failure. */
  get stopping(): boolean {
    return this.expectedExit;
  }

  markExpectedExit(): void {
    this.expectedExit = true;
  }

  async logTail(maxChars = 2000): Promise<string> {
    try {
      const text = await fs.readFile(this.logFile, 'utf8');
      return text.slice(-maxChars).trim();
    } catch {
      return '';
    }
  }

  /** SIGTERM lets qemu-nbd close the image cleanly; SIGKILL only if it does not go within graceMs. */
  stop(graceMs: number): Promise<ExitStatus> {
    this.expectedExit = true;
    return terminateProcess(this.handle, graceMs, this.program);
  }
}

/** For helpers told to exit another way (fusermount3 -u): give them graceMs, then signal. */
export async function awaitExitOrStop(helper: HelperChild, graceMs: number): Promise<ExitStatus> {
  helper.markExpectedExit();
  if (await exitsWithin(helper.exited, graceMs)) return helper.exited;
  return helper.stop(graceMs);
}

export function describeExit(status: ExitStatus): string {
  if (status.spawnError) return `could not be started (${status.spawnError})`;
  if (status.signal) return `was killed by ${status.signal}`;
  if (status.code !== null) return `exited with code ${status.code}`;
  return 'exited';
}
