import { randomBytes } from 'node:crypto';
import { basename } from 'node:path';
import { performance } from 'node:perf_hooks';
import { AdoptedProcessHandle, ProcessHandle, terminateProcess } from '../../process/child-process';
import { ExitStatus, isRunningState, readCmdline, readProcStat } from '../../process/proc';
import { buildQemuNbdArgs, isValidLeaseId, supportsDirectIo } from '../../qemu/qemu-nbd-args';
import { runsChunkNbd } from '../../repositories/chunks/chunk-nbd/chunk-nbd-args';
import { chunkPointServerArgs } from '../../repositories/chunks/chunk-nbd/chunk-point-args';
import { QemuNbdLaunch, spawnQemuNbd, waitUntilServing } from '../../qemu/qemu-nbd-launcher';
import type { ManagedExportSpec, PidFileRecord, QemuNbdExit, QemuNbdLogLevel, QemuNbdManagerOptions, RunningExport } from './qemu-nbd.types';
import { RunDirFiles } from './run-dir-files';

/**
 * Generous on purpose: SIGTERM makes qemu-nbd flush what the page cache holds
 * for the image, and the SIGKILL fallback leaves dirty bitmaps unusable.
 */
export const DEFAULT_STOP_TIMEOUT_MS = 30_000;
export const DEFAULT_READY_TIMEOUT_MS = 10_000;
/**
 * A chunk point's writer commits its point when stopped: the last pack (up to 64 MiB) and the point's index (8 bytes
 * a 64 KiB block before compression: 128 MiB for a 1 TiB disk) written and synced. On a slow disk that takes longer than any grace a
 * failing export deserves, and a SIGKILL in the middle throws away a backup whose data all arrived.
 */
export const DEFAULT_COMMIT_TIMEOUT_MS = 10 * 60_000;
/** The key, not the name, is the secret; one name for every export keeps names out of the agent's protocol. */
const PSK_IDENTITY = 'sendense';

interface TrackedExport {
  readonly leaseId: string;
  readonly port: number;
  readonly file: string;
  readonly handle: ProcessHandle;
  /** Set once start() resolved or adopt() returned true; before that an exit is start()'s failure, not an onExit. */
  info?: RunningExport;
  stopRequested: boolean;
  stopping?: Promise<void>;
  /** Resolves after the exit has been handled: files removed, onExit called. */
  gone: Promise<void>;
  exitStatus?: ExitStatus;
  stderrTail?: string;
  /** Its record is on disk (written as it was spawned, or found by adopt()): removed when it exits. */
  recorded?: boolean;
  /** Between SIGTERM and SIGKILL when it is stopped. */
  graceMs: number;
  /** Left running for a later adopt(): its exit, and its files, are no longer this manager's. */
  forgotten?: boolean;
}

/** One qemu-nbd process per export: start, watch, stop, and take over those an earlier hub run left behind. */
export class QemuNbdManager {
  private readonly files: RunDirFiles;
  private readonly binary: string;
  private readonly stopTimeoutMs: number;
  private readonly commitTimeoutMs: number;
  private readonly readyTimeoutMs: number;
  private readonly exports = new Map<string, TrackedExport>();

  constructor(private readonly opts: QemuNbdManagerOptions) {
    this.files = new RunDirFiles(opts.runDir);
    this.binary = opts.binary ?? 'qemu-nbd';
    this.stopTimeoutMs = opts.stopTimeoutMs ?? DEFAULT_STOP_TIMEOUT_MS;
    this.commitTimeoutMs = opts.commitTimeoutMs ?? DEFAULT_COMMIT_TIMEOUT_MS;
    this.readyTimeoutMs = opts.readyTimeoutMs ?? DEFAULT_READY_TIMEOUT_MS;
  }

  /** A writable export writes around the page cache where the filesystem allows it (see buildQemuNbdArgs). */
  buildArgs(spec: ManagedExportSpec): string[] {
    if (spec.format === 'chunks') return this.chunkArgs(spec);
    const tls = spec.tls && { bind: spec.tls.bind, pskDir: this.files.pskDir(spec.leaseId) };
    const directIo = !spec.readOnly && supportsDirectIo(spec.file);
    return buildQemuNbdArgs({ ...spec, tls, directIo }, this.files.qemuPidPath(spec.leaseId));
  }

  /** A chunk point is served by the chunk store's own server process, run and adopted as a qemu-nbd is (src/repositories/chunks/chunk-nbd). */
  private chunkArgs(spec: ManagedExportSpec): string[] {
    const serve = { listen: { host: spec.tls?.bind ?? '127.0.0.1', port: spec.port }, exportName: spec.exportName, ...(spec.tls ? { tls: { pskDir: this.files.pskDir(spec.leaseId) } } : {}), ...(spec.create ? { create: spec.create } : {}) };
    const args = chunkPointServerArgs(spec.file, serve, this.files.qemuPidPath(spec.leaseId));
    if (!args) throw new Error(`${spec.file} is not a chunk point's index`);
    return args;
  }

  /** What runs an export's command line: node for the chunk store's server, else qemu-nbd. */
  private binaryOf(args: readonly string[]): string {
    return runsChunkNbd(args) ? process.execPath : this.binary;
  }

  /** With spec.tls, the export gets a fresh pre-shared key of its own (RunningExport.psk): only who was handed it gets in. */
  async start(spec: ManagedExportSpec): Promise<RunningExport> {
    return (await this.launch(spec)).serving;
  }

  /**
   * Spawns the export and returns before it serves, with its key and the wait: a backup hands both to its agent, which
   * takes its snapshot meanwhile (chunk-nbd, a node process, takes 100-200 ms to serve). `serving` fails as start does.
   */
  async launch(spec: ManagedExportSpec): Promise<{ psk: RunningExport['psk']; serving: Promise<RunningExport> }> {
    const args = this.buildArgs(spec);
    const what = `${spec.format === 'chunks' ? 'chunk-nbd' : 'qemu-nbd'} for lease ${spec.leaseId} (${spec.file} on ${spec.tls?.bind ?? '127.0.0.1'}:${spec.port}${spec.tls ? ', TLS' : ''})`;
    if (this.exports.has(spec.leaseId)) throw new Error(`${what}: the lease already has an export`);
    const portOwner = [...this.exports.values()].find((e) => e.port === spec.port);
    if (portOwner) throw new Error(`${what}: port ${spec.port} is already used by lease ${portOwner.leaseId}`);
    this.files.ensureDir();
    const previous = this.files.readRecord(spec.leaseId);
    if (previous && this.liveStartTime(previous) !== undefined) {
      throw new Error(`${what}: qemu-nbd pid ${previous.pid} from an earlier run still serves this lease; adopt() or killOrphan() it first`);
    }
    this.files.removeProcessFiles(spec.leaseId);
    const psk = spec.tls ? { identity: PSK_IDENTITY, key: randomBytes(32).toString('hex') } : undefined;
    if (psk) this.files.writePsk(spec.leaseId, psk);

    const began = performance.now();
    const binary = this.binaryOf(args);
    const launch: QemuNbdLaunch = {
      binary,
      args,
      pidFile: this.files.qemuPidPath(spec.leaseId),
      listen: { port: spec.port },
      logFile: this.files.logPath(spec.leaseId),
      // The hub may exit (or be restarted) while exports keep running for a later adopt().
      detached: true,
    };
    const handle = spawnQemuNbd(launch);
    if (handle.spawnError) {
      const error = await handle.spawnError;
      this.files.removeProcessFiles(spec.leaseId);
      throw new Error(`${what}: cannot run ${binary}: ${error.message}`);
    }
    const entry = this.track(spec, handle, spec.format === 'chunks' && spec.create ? this.commitTimeoutMs : this.stopTimeoutMs);
    const startedAt = new Date();
    // recorded as it is spawned, not once it serves: a hub killed while it waits leaves a record by which the next
    // start finds the detached process and stops it (reconcile), where it would otherwise run on unowned
    try {
      this.files.writeRecord({ leaseId: spec.leaseId, pid: handle.pid, port: spec.port, file: spec.file, args, startedAt: startedAt.toISOString() });
      entry.recorded = true;
    } catch (error) {
      await this.terminate(entry, what);
      throw new Error(`${what}: cannot write its pid file: ${error instanceof Error ? error.message : String(error)}`);
    }

    const serving = (async () => {
      const outcome = await waitUntilServing(handle, launch, this.readyTimeoutMs, () => entry.stopRequested);
      if (outcome !== 'ready') {
        await this.terminate(entry, what);
        const reason =
          outcome === 'stopped' ? 'was stopped before it was ready' :
          outcome === 'timeout' ? `was not ready within ${this.readyTimeoutMs} ms` :
          `exited ${describeExit(entry.exitStatus ?? { code: null, signal: null })} before it was ready`;
        throw new Error(`${what} ${reason}: ${entry.stderrTail || '(nothing on stderr)'}`);
      }
      const info: RunningExport = { leaseId: spec.leaseId, pid: handle.pid, port: spec.port, file: spec.file, args, startedAt, adopted: false, psk };
      entry.info = info;
      this.log('info', `${what} ready, pid ${handle.pid}, in ${(performance.now() - began).toFixed(1)} ms`);
      return copyOf(info);
    })();
    // a caller that gave up on the export (its job failed meanwhile) need not wait for it
    serving.catch(() => undefined);
    return { psk, serving };
  }

  /** Resolves once the process is gone and onExit has been called; a lease without an export is a no-op. */
  stop(leaseId: string): Promise<void> {
    const entry = this.exports.get(leaseId);
    if (!entry) {
      this.log('debug', `stop: lease ${leaseId} has no qemu-nbd`);
      return Promise.resolve();
    }
    return this.terminate(entry, `qemu-nbd for lease ${leaseId}`);
  }

  /**
   * Stops watching an export left running for the next hub run to adopt. That run owns it from then on: its exit is
   * that run's to record, and its pid file that run's to remove, even while this process still lives (a hub
   * application closed and created again in one process, as the tests do).
   */
  forget(leaseId: string): void {
    const entry = this.exports.get(leaseId);
    if (!entry) return;
    entry.forgotten = true;
    this.exports.delete(leaseId);
  }

  /** Ready exports only; one still starting is not listed. */
  list(): RunningExport[] {
    return [...this.exports.values()].flatMap((e) => (e.info ? [copyOf(e.info)] : []));
  }

  /**
   * Takes over a qemu-nbd an earlier hub run started. Only an exact argv match
   * proves the pid is still that export and not an unrelated process that
   * inherited the number.
   */
  adopt(record: PidFileRecord): boolean {
    const what = `qemu-nbd pid ${record.pid} of lease ${record.leaseId}`;
    if (!isValidLeaseId(record.leaseId)) {
      this.log('warn', `adopt: ${what}: invalid lease id`);
      return false;
    }
    if (this.exports.has(record.leaseId) || [...this.exports.values()].some((e) => e.port === record.port)) {
      this.log('warn', `adopt: ${what}: lease or port ${record.port} already tracked`);
      return false;
    }
    const startTime = this.liveStartTime(record);
    if (startTime === undefined) {
      this.log('info', `adopt: ${what} is not running with the recorded command line`);
      return false;
    }
    const handle = new AdoptedProcessHandle(record.pid, startTime);
    const entry = this.track({ leaseId: record.leaseId, port: record.port, file: record.file }, handle);
    entry.recorded = true;
    const psk = this.files.readPsk(record.leaseId);
    entry.info = { leaseId: record.leaseId, pid: record.pid, port: record.port, file: record.file, args: [...record.args], startedAt: new Date(record.startedAt), adopted: true, psk };
    this.log('info', `adopted ${what} on 127.0.0.1:${record.port}`);
    return true;
  }

  /** Records left by an earlier run, excluding leases this manager tracks; unusable files are logged and skipped. */
  readPidFiles(): PidFileRecord[] {
    const { records, problems } = this.files.readRecords();
    for (const problem of problems) this.log('warn', problem);
    return records.filter((r) => !this.exports.has(r.leaseId));
  }

  /** Stops a leftover that no lease owns (only if its argv still matches the record) and removes its files. No onExit. */
  async killOrphan(record: PidFileRecord): Promise<void> {
    const what = `orphaned qemu-nbd pid ${record.pid} of lease ${record.leaseId}`;
    if (!isValidLeaseId(record.leaseId)) throw new Error(`killOrphan: ${what}: invalid lease id`);
    if (this.exports.has(record.leaseId)) throw new Error(`killOrphan: lease ${record.leaseId} is tracked by this manager; use stop()`);
    const startTime = this.liveStartTime(record);
    if (startTime === undefined) {
      this.log('info', `${what} is no longer running; removing its files`);
    } else if (runsChunkNbd(record.args) && record.args.some((a) => a.startsWith('--commit='))) {
      // a chunk point's writer commits its point when asked to stop: one nobody owns is killed, so it commits nothing
      // (its chunks are garbage for the next collection, its registration a dead writer's)
      const handle = new AdoptedProcessHandle(record.pid, startTime);
      handle.signal('SIGKILL');
      this.log('info', `killed ${what}, a chunk point's writer, without committing its point (exited ${describeExit(await handle.exited)})`);
    } else {
      const status = await terminateProcess(new AdoptedProcessHandle(record.pid, startTime), this.stopTimeoutMs, what, (m) => this.log('warn', `${m} (its dirty bitmaps will be left in-use)`));
      this.log('info', `stopped ${what} (exited ${describeExit(status)})`);
    }
    this.files.removeProcessFiles(record.leaseId);
    this.files.removeRecord(record.leaseId);
  }

  async stopAll(): Promise<void> {
    const results = await Promise.allSettled([...this.exports.keys()].map((leaseId) => this.stop(leaseId)));
    const failures = results.flatMap((r) => (r.status === 'rejected' ? [r.reason instanceof Error ? r.reason.message : String(r.reason)] : []));
    if (failures.length > 0) throw new Error(`stopAll: ${failures.length} qemu-nbd process(es) did not stop: ${failures.join('; ')}`);
  }

  private track(where: { leaseId: string; port: number; file: string }, handle: ProcessHandle, graceMs = this.stopTimeoutMs): TrackedExport {
    const entry: TrackedExport = { leaseId: where.leaseId, port: where.port, file: where.file, handle, stopRequested: false, gone: Promise.resolve(), graceMs };
    entry.gone = handle.exited.then((status) => this.afterExit(entry, status));
    this.exports.set(where.leaseId, entry);
    return entry;
  }

  private terminate(entry: TrackedExport, what: string): Promise<void> {
    if (!entry.stopping) {
      entry.stopRequested = true;
      entry.stopping = terminateProcess(entry.handle, entry.graceMs, what, (m) => this.log('warn', `${m} (its dirty bitmaps will be left in-use)`)).then(
        () => entry.gone,
        (error: unknown) => {
          entry.stopping = undefined; // let a later stop() try again
          throw error;
        },
      );
    }
    return entry.stopping;
  }

  /** Never throws: it runs detached from any caller, on every exit. */
  private afterExit(entry: TrackedExport, status: ExitStatus): void {
    if (entry.forgotten) return;
    entry.exitStatus = status;
    try {
      entry.stderrTail = this.files.stderrTail(entry.leaseId);
      this.files.removeProcessFiles(entry.leaseId);
      if (entry.recorded) this.files.removeRecord(entry.leaseId);
    } catch (error) {
      this.log('error', `cleaning up after qemu-nbd of lease ${entry.leaseId}: ${error instanceof Error ? error.message : String(error)}`);
    }
    if (this.exports.get(entry.leaseId) === entry) this.exports.delete(entry.leaseId);
    if (!entry.info) return; // start() reports it
    const exit: QemuNbdExit = {
      leaseId: entry.leaseId,
      pid: entry.handle.pid,
      code: status.code,
      signal: status.signal,
      stderrTail: entry.stderrTail ?? '',
      expected: entry.stopRequested,
    };
    this.log(exit.expected ? 'info' : 'error', `qemu-nbd for lease ${entry.leaseId} (pid ${exit.pid}) exited ${describeExit(status)}${exit.expected ? '' : ' unexpectedly'}`);
    try {
      this.opts.onExit(exit);
    } catch (error) {
      this.log('error', `onExit for lease ${entry.leaseId} threw: ${error instanceof Error ? error.message : String(error)}`);
    }
  }

  /** The process start time if record.pid is alive and runs exactly the recorded command line. */
  private liveStartTime(record: PidFileRecord): string | undefined {
    const before = readProcStat(record.pid);
    if (!before || !isRunningState(before.state)) return undefined;
    const argv = readCmdline(record.pid);
    if (!argv || basename(argv[0] ?? '') !== basename(this.binaryOf(record.args))) return undefined;
    const args = argv.slice(1);
    if (args.length !== record.args.length || args.some((a, i) => a !== record.args[i])) return undefined;
    // The pid could have died and been reused between the two reads.
    const after = readProcStat(record.pid);
    return after && after.startTime === before.startTime && isRunningState(after.state) ? before.startTime : undefined;
  }

  private log(level: QemuNbdLogLevel, message: string): void {
    this.opts.log?.(level, message);
  }
}

function describeExit(status: ExitStatus): string {
  if (status.signal) return `on signal ${status.signal}`;
  if (status.code !== null) return `with code ${status.code}`;
  return 'with an unknown status';
}

/** Callers get copies: what we track must not change under us. */
function copyOf(info: RunningExport): RunningExport {
  return { ...info, args: [...info.args], startedAt: new Date(info.startedAt), psk: info.psk && { ...info.psk } };
}
