import { readFileSync, rmSync } from 'node:fs';
import { performance } from 'node:perf_hooks';
import { ChildProcessHandle, terminateProcess } from '../process/child-process';
import { ExitStatus, isListeningOn, isListeningOnUnixSocket } from '../process/proc';
import { readLogTail } from '../process/log-tail';
import { IO_URING, refuseIoUring } from './qemu-nbd-args';

/**
 * The one way qemu-nbd is run, for hub exports, the agent's source snapshots
 * and restore mounts. Decisions (see src/nbd/qemu-nbd/README.md):
 * - no --fork: qemu-nbd stays our child, so its death is an 'exit' event;
 * - ready = qemu-nbd's own --pid-file names our child AND the listening
 *   socket (TCP port or Unix socket) is one of the child's fds. The socket
 *   alone proves nothing: qemu-nbd 7.2 listens before it opens the image, so
 *   a locked or missing image briefly shows a listening socket and then
 *   exits; and a squatter on the port or path is not us. No NBD handshake is
 *   made as a probe (it would take a share slot, and end a non-persistent
 *   server);
 * - stdout and stderr go to a log file, which outlives the launching process.
 */
export interface QemuNbdLaunch {
  /** Default 'qemu-nbd' (looked up in PATH). */
  binary?: string;
  /** The whole command line without the binary; must contain --pid-file=<pidFile>. */
  args: readonly string[];
  pidFile: string;
  listen: { port: number } | { socket: string };
  logFile: string;
  /** true for servers that must outlive us (hub exports, restore mounts); false: SIGKILLed when this process exits (agent snapshots). */
  detached: boolean;
}

export type Readiness = 'ready' | 'exited' | 'stopped' | 'timeout';

/** qemu-nbd is ready ~10 ms after spawn; a coarser poll would dominate start latency. */
const READY_POLL_MS = 3;

/**
 * qemu-nbd's environment. GLIBC_TUNABLES: qemu takes every request's buffer from malloc and frees it
 * after the reply; by default glibc maps buffers of 128 KiB and more (soon 1 MiB and more) with
 * mmap and hands the freed top of its heap back to the kernel, so the pages of almost every request
 * were faulted in and zeroed again — the largest cost of both servers after the copies themselves
 * (docs/benchmarks.md, backup). Requests up to NBD's 32 MiB maximum now come from the heap, which
 * keeps up to 64 MiB free before trimming. LC_ALL: qemu's messages, which we show and match, stay
 * in one language.
 */
export const QEMU_NBD_ENV: Readonly<Record<string, string>> = {
  LC_ALL: 'C',
  GLIBC_TUNABLES: 'glibc.malloc.mmap_threshold=33554432:glibc.malloc.trim_threshold=67108864',
};

/**
 * A read-only export's environment: its heap also in transparent huge pages (glibc.malloc.hugetlb=1, where the
 * kernel offers them). Opening a chain allocates tables and caches for every file of it, and most of that open
 * was page faults: the newest of 201 points served after 118 ms instead of 205, the newest of 2 unchanged
 * (docs/benchmarks.md, chain). Writable exports keep the default, which their throughput was measured with.
 */
export const READ_ONLY_QEMU_NBD_ENV: Readonly<Record<string, string>> = {
  ...QEMU_NBD_ENV,
  GLIBC_TUNABLES: `${QEMU_NBD_ENV.GLIBC_TUNABLES}:glibc.malloc.hugetlb=1`,
};

/**
 * The environment of the chunk store's server, a node process run in qemu-nbd's place. NODE_EXTRA_CA_CERTS, where the
 * hub's environment has it, is left out: node parses that file at every start (144 certificates on the machine this
 * was measured on: 0.10 s for `node -e 0` with it, 0.06 s without), and the server authenticates its clients by a
 * pre-shared key, never a certificate.
 */
export const NODE_SERVER_ENV: Readonly<Record<string, string | undefined>> = { LC_ALL: 'C', NODE_EXTRA_CA_CERTS: undefined };

/** Synchronous, so the caller can track (and stop) the process before anything else runs; check spawnError before waiting. */
export function spawnQemuNbd(launch: QemuNbdLaunch): ChildProcessHandle {
  if (!launch.args.includes(`--pid-file=${launch.pidFile}`)) throw new Error(`qemu-nbd command line lacks --pid-file=${launch.pidFile}`);
  rmSync(launch.pidFile, { force: true });
  const env = launch.binary === process.execPath ? NODE_SERVER_ENV : launch.args.includes('-r') ? READ_ONLY_QEMU_NBD_ENV : QEMU_NBD_ENV;
  return ChildProcessHandle.spawn(launch.binary ?? 'qemu-nbd', launch.args, { detached: launch.detached, logFile: launch.logFile, env: { ...env } });
}

/** The pid qemu-nbd wrote, or undefined while the file is missing or not completely written (qemu writes "PID\n"). */
export function readPidFile(path: string): number | undefined {
  let text: string;
  try {
    text = readFileSync(path, 'utf8');
  } catch {
    return undefined;
  }
  if (!text.endsWith('\n')) return undefined;
  const pid = Number(text.trim());
  return Number.isInteger(pid) && pid > 0 ? pid : undefined;
}

export async function isServing(pid: number, launch: Pick<QemuNbdLaunch, 'pidFile' | 'listen'>): Promise<boolean> {
  if (readPidFile(launch.pidFile) !== pid) return false;
  return 'port' in launch.listen ? isListeningOn(pid, launch.listen.port) : isListeningOnUnixSocket(pid, launch.listen.socket);
}

/** Polls until the export serves, the process exits, `stopped()` turns true, or timeoutMs passes. */
export async function waitUntilServing(handle: ChildProcessHandle, launch: QemuNbdLaunch, timeoutMs: number, stopped: () => boolean = () => false): Promise<Readiness> {
  const deadline = performance.now() + timeoutMs;
  for (;;) {
    if (stopped()) return 'stopped';
    if (handle.hasExited()) return 'exited';
    // the socket table is read off the event loop: a stop asked for meanwhile wins
    if (await isServing(handle.pid, launch)) return stopped() ? 'stopped' : 'ready';
    if (performance.now() >= deadline) return 'timeout';
    let timer: NodeJS.Timeout | undefined;
    await Promise.race([handle.exited, new Promise((resolve) => (timer = setTimeout(resolve, READY_POLL_MS)))]);
    clearTimeout(timer);
  }
}

/** qemu-nbd did not come up; its log tail (qemu's own message: image locked, bitmap missing...) is in `stderr`. */
export class QemuNbdStartError extends Error {
  constructor(
    readonly outcome: 'spawn-failed' | 'exited' | 'timeout',
    readonly exit: ExitStatus,
    readonly stderr: string,
    readonly timeoutMs: number,
  ) {
    super(`qemu-nbd ${describeStartFailure(outcome, exit, timeoutMs)}: ${stderr.trim() || '(no message)'}`);
    this.name = 'QemuNbdStartError';
  }
}

function describeStartFailure(outcome: QemuNbdStartError['outcome'], exit: ExitStatus, timeoutMs: number): string {
  if (outcome === 'spawn-failed') return 'could not be started';
  if (outcome === 'timeout') return `did not become ready within ${timeoutMs} ms`;
  return exit.signal ? `was killed by ${exit.signal}` : `exited with code ${exit.code}`;
}

export interface LaunchOptions {
  readyTimeoutMs: number;
  /** SIGTERM to SIGKILL when a start that timed out is abandoned. */
  abandonGraceMs?: number;
}

/**
 * Starts qemu-nbd and resolves once it serves; on failure nothing of it is left running. Where io_uring is
 * forbidden (an old kernel, kernel.io_uring_disabled, a container's seccomp filter) qemu-nbd exits at once
 * saying so: it is started again without it, and no later export asks for it.
 */
export async function launchQemuNbd(launch: QemuNbdLaunch, options: LaunchOptions): Promise<ChildProcessHandle> {
  try {
    return await launchOnce(launch, options);
  } catch (error) {
    if (!(error instanceof QemuNbdStartError) || error.outcome !== 'exited' || !launch.args.includes(IO_URING) || !/io_uring/.test(error.stderr)) throw error;
    refuseIoUring();
    return launchOnce({ ...launch, args: launch.args.filter((arg) => arg !== IO_URING) }, options);
  }
}

async function launchOnce(launch: QemuNbdLaunch, options: LaunchOptions): Promise<ChildProcessHandle> {
  const handle = spawnQemuNbd(launch);
  if (handle.spawnError) {
    const error = await handle.spawnError;
    throw new QemuNbdStartError('spawn-failed', await handle.exited, `cannot run qemu-nbd: ${error.message}`, options.readyTimeoutMs);
  }
  const outcome = await waitUntilServing(handle, launch, options.readyTimeoutMs);
  if (outcome === 'ready') return handle;
  const exit = await terminateProcess(handle, options.abandonGraceMs ?? 1_000, `qemu-nbd (${launch.logFile})`);
  throw new QemuNbdStartError(outcome === 'timeout' ? 'timeout' : 'exited', exit, readLogTail(launch.logFile), options.readyTimeoutMs);
}
