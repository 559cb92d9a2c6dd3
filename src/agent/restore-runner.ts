import { mkdir, mkdtemp, open, readdir, rm } from 'node:fs/promises';
import { join } from 'node:path';
import { copyDisk } from '../data-mover';
import { NbdClient, openNbd } from '../nbd-protocol';
import { terminateProcess } from '../process/child-process';
import { killQemuNbdServingUnder } from '../process/socket-servers';
import { createFull, runQemuImg } from '../qemu/qemu-img';
import { buildSocketExportArgs, supportsDirectIo } from '../qemu/qemu-nbd-args';
import { launchQemuNbd } from '../qemu/qemu-nbd-launcher';
import { BlockDigests } from '../wire/block-digests';
import type { DamagedBlock, RestoreCheckRequest, RestoreReport, RestoreStartRequest } from '../wire/restore-protocol';
import { sendLastReport } from './last-report';
import { checkRestoredDisk } from './restore-check';
import { RestoreJournal, RestoreJournalState } from './restore-journal';
import { checkFreeSpace } from './restore-space';
import { type DrillOutcome, RestoreConflict, type RestoreDiskPlan, type RestoredDomainInfo } from './sources/libvirt/libvirt-restorer';

/** What a hypervisor of this host does for a restore (the libvirt restorer); an agent without one restores nothing. */
export interface RestoreHost {
  plan(req: RestoreCheckRequest): Promise<RestoreDiskPlan[]>;
  commit(req: RestoreStartRequest, disks: RestoreDiskPlan[], journal: RestoreJournal): Promise<RestoredDomainInfo>;
  drill(req: RestoreStartRequest, journal: RestoreJournal, hubHost: string, signal: AbortSignal): Promise<DrillOutcome>;
  startInstant(req: RestoreStartRequest, plans: RestoreDiskPlan[], journal: RestoreJournal, hubHost: string): Promise<{ name: string; uuid: string; proxyDir: string }>;
  /** The background copy, to its end; `onStall` hears why it waits (null once it goes on), again at every check while it does. */
  pull(uuid: string, diskIds: string[], onProgress: (diskId: string, done: number, total: number) => void, signal: AbortSignal, onStall?: (reason: string | null) => void): Promise<void>;
  releaseInstant(state: RestoreJournalState): Promise<void>;
  /** An instant recovery's copy done: the domain resumed if an I/O error paused it; whether it runs. */
  settleInstant(uuid: string): Promise<boolean>;
  undo(state: RestoreJournalState): Promise<string[]>;
}

export interface RestoreRunnerDeps {
  host: RestoreHost | null;
  /** Where journals and the new disks' qemu-nbd sockets live (the agent's state dir). */
  workDir: string;
  /** The host the hub's exports listen on (the one the tunnel dials): an instant boot's proxies read from there. */
  hubHost: string;
  /** A connection to the hub's read-only export of one disk of the point, negotiated, with base:allocation. */
  connectSource: (nbd: RestoreStartRequest['disks'][number]['nbd']) => Promise<NbdClient>;
  /** The point's digests of one disk (src/wire/block-digests.ts), each block as the point reads it. */
  fetchDigests: (restore: Pick<RestoreStartRequest, 'restoreId' | 'correlationId'>, diskId: string) => Promise<Buffer>;
  report: (restore: Pick<RestoreStartRequest, 'restoreId' | 'correlationId' | 'causationId'>, report: RestoreReport) => Promise<void>;
  log: (level: 'info' | 'warn' | 'error', message: string) => void;
}

const PROGRESS_EVERY_MS = 1000;
/** An agent stopping leaves a running instant recovery alone: the domain keeps running, the next start resumes the copy. */
const SHUTDOWN = 'agent shutting down';
const NBD_DIR = 'nbd-';

/** What an instant recovery whose domain is local does when something fails: it says so and keeps it (and its journal). */
function keptLocal(log: RestoreRunnerDeps['log'], restoreId: string, reason: string): void {
  log('error', `instant recovery ${restoreId}: its domain is local and is kept; the next agent start tells the hub: ${reason}`);
}

/** A restore that found the point's data other than its digests say: it fails, naming the blocks. */
class DamagedRestore extends Error {
  constructor(readonly damaged: DamagedBlock[], count: number) {
    const first = damaged[0];
    super(`${count} block(s) restored differ from the point's digests; the first: disk ${first.diskId} at offset ${first.offset} (${first.length} bytes), expected sha256 ${first.expected}, read ${first.actual}`);
  }
}

/**
 * Restores on the agent: each disk of the point read from the hub's export and written into a new image on
 * this host, every block checked against the point's digests, and only then the domain defined (or the
 * replaced disks renamed into place). What a restore made is journaled before it is made, so a failed,
 * cancelled or killed restore leaves nothing behind.
 */
export class RestoreRunner {
  private readonly running = new Map<string, AbortController>();
  /** What each running restore writes to (a new domain's name, a replaced domain), taken before it makes anything. */
  private readonly targets = new Map<string, string>();

  constructor(private readonly deps: RestoreRunnerDeps) {}

  /** Checks the target before the hub records the restore as running; throws RestoreConflict for a taken name or a running domain. */
  async check(req: RestoreCheckRequest): Promise<void> {
    // a refusal of the request, as a taken name is: the hub answers it with 409, not as its own failure
    if (!this.deps.host) throw new RestoreConflict('this agent has no hypervisor to restore to (it was started with --inventory, not --libvirt)');
    this.refuseTaken(req);
    await checkFreeSpace(await this.deps.host.plan(req), req.disks);
  }

  /** Throws RestoreConflict when another running restore writes to the same target. */
  start(req: RestoreStartRequest): void {
    if (this.running.has(req.restoreId)) throw new Error(`restore ${req.restoreId} is already running`);
    // taken here, synchronously, before anything is made: of two restores to one name the second is refused,
    // never left to remove what the first wrote
    this.refuseTaken(req);
    const target = targetKey(req);
    if (target) this.targets.set(target, req.restoreId);
    const abort = new AbortController();
    this.running.set(req.restoreId, abort);
    void this.run(req, abort.signal).finally(() => {
      this.running.delete(req.restoreId);
      if (target && this.targets.get(target) === req.restoreId) this.targets.delete(target);
    });
  }

  private refuseTaken(req: RestoreCheckRequest): void {
    const target = targetKey(req);
    const holder = target ? this.targets.get(target) : undefined;
    if (holder !== undefined && holder !== req.restoreId) throw new RestoreConflict(`restore ${holder} is restoring to ${target} now`);
  }

  cancel(restoreId: string): boolean {
    const abort = this.running.get(restoreId);
    abort?.abort(new Error('cancelled'));
    return abort !== undefined;
  }

  isRunning(restoreId: string): boolean {
    return this.running.has(restoreId);
  }

  async stopAll(): Promise<void> {
    for (const abort of this.running.values()) abort.abort(new Error(SHUTDOWN));
    while (this.running.size) await new Promise((r) => setTimeout(r, 20));
  }

  /** At agent start: what restores of a killed agent made is undone (or, for a replace that was committing, finished). */
  async cleanupLeftovers(): Promise<string[]> {
    await mkdir(this.deps.workDir, { recursive: true, mode: 0o711 });
    const done: string[] = [];
    // the new disks' qemu-nbd of a killed agent, and their private socket directories
    for (const pid of await killQemuNbdServingUnder(join(this.deps.workDir, NBD_DIR))) done.push(`killed qemu-nbd ${pid}`);
    for (const entry of await readdir(this.deps.workDir)) {
      if (!entry.startsWith(NBD_DIR)) continue;
      await rm(join(this.deps.workDir, entry), { recursive: true, force: true });
      done.push(`removed ${entry}`);
    }
    for (const journal of await RestoreJournal.leftovers(this.deps.workDir)) {
      if (!this.deps.host) continue;
      if ((journal.state.phase === 'pulling' || journal.state.phase === 'local') && journal.state.instant) {
        // the domain runs on the hub's data, or on its own: finish copying it, never undo it
        done.push(journal.state.phase === 'pulling' ? `resumed the background copy of instant recovery ${journal.state.restoreId}` : `telling the hub that instant recovery ${journal.state.restoreId} is local`);
        this.resume(journal);
        continue;
      }
      // an undo that cannot remove the domain keeps its journal: the start goes on, the next one tries again
      const undone = await this.deps.host.undo(journal.state).catch((e: Error) => {
        this.deps.log('error', `undoing restore ${journal.state.restoreId} failed (the next agent start tries again): ${e.message}`);
        return null;
      });
      if (!undone) continue;
      done.push(...undone);
      await journal.remove();
    }
    if (done.length) this.deps.log('warn', `cleaned up after restores a previous agent did not finish: ${done.join('; ')}`);
    return done;
  }

  private async run(req: RestoreStartRequest, signal: AbortSignal): Promise<void> {
    const { log } = this.deps;
    let previous: Promise<unknown> = Promise.resolve();
    const report = (r: RestoreReport) => {
      const sent = previous.then(() => this.deps.report(req, r));
      previous = sent.catch(() => undefined);
      return sent;
    };
    // the restore's end reaches the hub even when its API is busy for a moment: only it ends the restore there
    const last = (r: RestoreReport) =>
      sendLastReport(() => report(r), { signal, onRetry: (e, ms) => log('warn', `restore ${req.restoreId}: its last report did not reach the hub (${String(e)}); trying again in ${ms} ms`) });
    let journal: RestoreJournal | undefined;
    try {
      if (!this.deps.host) throw new Error('this agent has no hypervisor to restore to (it was started with --inventory, not --libvirt)');
      const disks = await this.deps.host.plan(req);
      journal = await RestoreJournal.create(this.deps.workDir, req.restoreId);
      await reserveFiles(disks, journal);
      if (req.mode === 'instant' && req.target.kind === 'new-domain') {
        const started = await this.deps.host.startInstant(req, disks, journal, this.deps.hubHost);
        // journaled before the hub hears of it: an agent killed once the hub knows the domain runs must resume its copy, never undo it
        await journal.record({ phase: 'pulling', instant: { correlationId: req.correlationId, causationId: req.causationId, name: started.name, uuid: started.uuid, diskIds: disks.map((d) => d.diskId), proxyDir: started.proxyDir } });
        // a hub busy for a moment must not cost the guest it could not hear of: told again, as a last report is
        await sendLastReport(async () => void (await report({ type: 'instant-running', name: started.name, uuid: started.uuid })), {
          signal,
          onRetry: (e, ms) => log('warn', `instant recovery ${req.restoreId}: telling the hub that its domain runs failed (${String(e)}); trying again in ${ms} ms`),
        });
        await this.finishInstant(journal, signal, report);
        journal = undefined;
        return;
      }
      if (req.target.kind === 'drill') {
        const outcome = await this.deps.host.drill(req, journal, this.deps.hubHost, signal);
        await journal.remove();
        journal = undefined;
        await last({ type: 'drill-finished', ...outcome });
        return;
      }
      await report({ type: 'restore-started', disks: disks.map((d) => ({ diskId: d.diskId, path: d.final })) });
      for (const disk of disks) {
        signal.throwIfAborted();
        await this.restoreDisk(req, disk, journal, report, signal);
      }
      signal.throwIfAborted();
      const domain = await this.deps.host.commit(req, disks, journal);
      // the restore's result from here: a domain on verified disks (maybe running): a hub that cannot be told never undoes it
      await journal.remove();
      journal = undefined;
      for (const note of domain.notes) log('info', `restore ${req.restoreId}: ${note}`);
      const tell = (r: RestoreReport) => last(r).catch((e) => log('error', `restore ${req.restoreId}: domain ${domain.name} is restored and stays; telling the hub (${r.type}) failed: ${String(e)}`));
      if (req.target.kind === 'new-domain') await tell({ type: 'domain-defined', name: domain.name, uuid: domain.uuid });
      await tell({ type: 'finished', domain: { name: domain.name, uuid: domain.uuid, started: domain.started } });
    } catch (error) {
      const reason = signal.aborted ? String((signal.reason as Error)?.message ?? 'cancelled') : error instanceof Error ? error.message : String(error);
      if (journal?.state.phase === 'pulling' && reason === SHUTDOWN) return;
      if (journal?.state.phase === 'local') return keptLocal(log, req.restoreId, reason);
      log('error', `restore ${req.restoreId} of ${req.restorePointId} failed: ${reason}`);
      if (journal && this.deps.host) {
        // a journal whose undo failed stays: the next agent start tries again
        await this.deps.host.undo(journal.state).then(
          () => journal!.remove(),
          (e) => log('error', `undoing restore ${req.restoreId} failed (the next agent start tries again): ${String(e)}`),
        );
      }
      await last({ type: 'failed', reason, damaged: error instanceof DamagedRestore ? error.damaged : [] }).catch((e) => log('error', `could not report the failure of restore ${req.restoreId}: ${String(e)}`));
    }
  }

  /**
   * The background copy of a running instant recovery, to its end: the domain local, the proxies gone, the hub told.
   * Once the copy is done (`local` in the journal) the domain holds the only copy of what its guest wrote since it
   * booted: nothing that fails after that undoes it. Stopping the proxies or checking that it runs may fail (said,
   * the domain reported as not known to run); the hub is told until it takes the report or refuses it (its final
   * word), for as long as this agent runs; an agent stopped before that leaves the journal for the next to report.
   */
  private async finishInstant(journal: RestoreJournal, signal: AbortSignal, report: (r: RestoreReport) => Promise<unknown>): Promise<void> {
    const { instant, restoreId } = journal.state;
    const { log } = this.deps;
    if (journal.state.phase !== 'local') {
      const last = new Map<string, number>();
      // what the hub was told of the copy's stall (unknown to a resumed copy), and what it is being told
      let told: string | null | undefined;
      let telling: string | null | undefined;
      await this.deps.host!.pull(instant!.uuid, instant!.diskIds, (diskId, done, total) => {
        if (Date.now() - (last.get(diskId) ?? 0) < PROGRESS_EVERY_MS) return;
        last.set(diskId, Date.now());
        void report({ type: 'disk-progressed', diskId, bytesDone: done, bytesPlanned: total, rate: 0 }).catch(() => undefined);
      }, signal, (reason) => {
        // the hub hears each change once it took it: one it did not take is said again at the copy's next check
        if (reason === told || reason === telling) return;
        telling = reason;
        if (reason !== null) log('warn', `instant recovery ${restoreId}: ${reason}; its domain ${instant!.name} is kept until the copy is done (cancel the restore to give it up)`);
        void report({ type: 'copy-stalled', reason }).then(
          () => (told = reason),
          (e) => log('warn', `instant recovery ${restoreId}: telling the hub that its copy ${reason === null ? 'goes on' : 'waits'} failed (said again at the next check): ${String(e)}`),
        ).finally(() => telling === reason && (telling = undefined));
      });
      // the domain needs the hub no more: in memory whatever the write does, so that nothing here undoes it (a journal
      // left saying `pulling` is resumed by the next start, whose copy finds every disk local)
      await journal.record({ phase: 'local' }).catch((e) => {
        journal.state = { ...journal.state, phase: 'local' };
        log('error', `instant recovery ${restoreId}: its domain is local, but the journal could not say so: ${String(e)}`);
      });
      for (const diskId of instant!.diskIds) await report({ type: 'disk-completed', diskId, bytesWritten: 0, bytesZeroed: 0, bytesPlanned: 0, durationMs: 0, verifiedBlocks: 0 }).catch(() => undefined);
    }
    await this.deps.host!.releaseInstant(journal.state).catch((e) => log('error', `instant recovery ${restoreId}: its domain ${instant!.name} is local, but stopping its NBD proxies failed (they may still run): ${String(e)}`));
    const started = await this.deps.host!.settleInstant(instant!.uuid).catch((e) => {
      log('error', `instant recovery ${restoreId}: its domain ${instant!.name} is local, but whether it runs could not be checked (reported as not started): ${String(e)}`);
      return false;
    });
    const final: RestoreReport = { type: 'finished', domain: { name: instant!.name, uuid: instant!.uuid, started } };
    try {
      await sendLastReport(async () => void (await report(final)), { signal, budgetMs: Infinity, onRetry: (e, ms) => log('warn', `instant recovery ${restoreId} is local; telling the hub failed (${String(e)}), trying again in ${ms} ms`) });
    } catch (error) {
      if (signal.aborted) return;
      log('error', `instant recovery ${restoreId}: the hub refused its last report; its domain ${instant!.name} is local and stays: ${String(error)}`);
    }
    await journal.remove();
  }

  /** An instant recovery a previous agent left copying: the copy continues under this agent. */
  private resume(journal: RestoreJournal): void {
    const { restoreId, instant } = journal.state;
    const abort = new AbortController();
    this.running.set(restoreId, abort);
    const restore = { restoreId, correlationId: instant!.correlationId, causationId: instant!.causationId };
    const report = (r: RestoreReport) => this.deps.report(restore, r);
    void this.finishInstant(journal, abort.signal, report)
      .catch(async (error: Error) => {
        const reason = abort.signal.aborted ? String((abort.signal.reason as Error)?.message ?? 'cancelled') : error.message;
        if (reason === SHUTDOWN) return;
        if (journal.state.phase === 'local') return keptLocal(this.deps.log, restoreId, reason);
        // as a restore this agent started: what it made goes, then the hub hears why
        this.deps.log('error', `instant recovery ${restoreId} failed: ${reason}`);
        await this.deps.host!.undo(journal.state).then(
          () => journal.remove(),
          (e) => this.deps.log('error', `undoing restore ${restoreId} failed (the next agent start tries again): ${String(e)}`),
        );
        await report({ type: 'failed', reason, damaged: [] }).catch((e) => this.deps.log('error', `could not report the failure of restore ${restoreId}: ${String(e)}`));
      })
      .finally(() => this.running.delete(restoreId));
  }

  /** One disk: a new image, served writable on a private socket, filled from the hub's export, then checked. */
  private async restoreDisk(req: RestoreStartRequest, disk: RestoreDiskPlan, journal: RestoreJournal, report: (r: RestoreReport) => Promise<unknown>, signal: AbortSignal): Promise<void> {
    const wire = req.disks.find((d) => d.diskId === disk.diskId)!;
    const expected = wire.digests ? BlockDigests.decode(await this.deps.fetchDigests(req, disk.diskId)) : null;
    // the (empty) file is ours since reserveFiles
    if (disk.format === 'qcow2') await createFull(disk.write, disk.virtualSize, { overwrite: true });
    else await runQemuImg(['create', '-q', '-f', 'raw', disk.write, String(disk.virtualSize)]);
    const dir = await mkdtemp(join(this.deps.workDir, NBD_DIR));
    const socket = join(dir, 'nbd.sock');
    const pidFile = join(dir, 'qemu-nbd.pid');
    const args = buildSocketExportArgs({ file: disk.write, format: disk.format, socket, exportName: disk.diskId, shared: 1, writable: { directIo: supportsDirectIo(disk.write) } }, pidFile);
    const server = await launchQemuNbd({ args, pidFile, listen: { socket }, logFile: join(dir, 'qemu-nbd.log'), detached: false }, { readyTimeoutMs: 30_000 }).catch(async (error: unknown) => {
      await rm(dir, { recursive: true, force: true });
      throw error;
    });
    let source: NbdClient | undefined;
    let target: NbdClient | undefined;
    try {
      source = await this.deps.connectSource(wire.nbd);
      target = await openNbd(`nbd+unix:///${disk.diskId}?socket=${socket}`);
      let lastReport = 0;
      const summary = await copyDisk({
        source,
        target,
        mode: 'full',
        signal,
        digests: true,
        onProgress: (p) => {
          if (Date.now() - lastReport < PROGRESS_EVERY_MS) return;
          lastReport = Date.now();
          void report({ type: 'disk-progressed', diskId: disk.diskId, bytesDone: p.bytesDone, bytesPlanned: p.bytesPlanned, rate: Math.round(p.rate) }).catch(() => undefined);
        },
      });
      let verifiedBlocks = 0;
      if (expected) {
        const check = checkRestoredDisk(disk.diskId, expected, summary.digests!);
        if (check.damaged.length) throw new DamagedRestore(check.damaged, check.damagedBlocks);
        verifiedBlocks = check.verifiedBlocks;
      }
      // the hub completes the restore only once it has every disk's: a moment of a busy hub does not throw the copy away
      const completed: RestoreReport = { type: 'disk-completed', diskId: disk.diskId, bytesWritten: summary.bytesWritten, bytesZeroed: summary.bytesZeroed, bytesPlanned: summary.bytesPlanned, durationMs: Math.round(summary.durationMs), verifiedBlocks };
      await sendLastReport(async () => void (await report(completed)), { signal, onRetry: (e, ms) => this.deps.log('warn', `restore ${req.restoreId}: the report of disk ${disk.diskId} did not reach the hub (${String(e)}); trying again in ${ms} ms`) });
    } finally {
      await target?.close().catch(() => undefined);
      await source?.close().catch(() => undefined);
      await terminateProcess(server, 30_000, `qemu-nbd of restored disk ${disk.write}`).catch((e) => this.deps.log('warn', String(e)));
      await rm(dir, { recursive: true, force: true });
    }
  }
}

/** What a restore writes to, as two restores must not share it: a new domain's name, a replaced domain. A drill makes its own. */
function targetKey(req: RestoreCheckRequest): string | null {
  if (req.target.kind === 'new-domain') return `domain ${req.target.name}`;
  if (req.target.kind === 'replace') return `domain ${req.target.vmId}`;
  return null;
}

/**
 * Each file the restore writes, created empty and exclusively before anything else is made, and journaled only
 * once created: a file of that name already there (another restore's, anything else's) fails the restore
 * without becoming one its undo removes.
 */
async function reserveFiles(disks: RestoreDiskPlan[], journal: RestoreJournal): Promise<void> {
  for (const d of disks) {
    // journaled first: an agent killed between the two leaves a journal naming a file that may not exist, never a
    // file no journal names (one made first was left behind for good when the kill came before the journal's write)
    await journal.addFile(d.write);
    await open(d.write, 'wx', 0o644).then(
      (file) => file.close(),
      async (error: NodeJS.ErrnoException) => {
        // not ours: the journal must not name it, or the undo would remove another's file
        await journal.forgetFile(d.write);
        throw error.code === 'EEXIST' ? new RestoreConflict(`${d.write} already exists`) : error;
      },
    );
  }
}
