import { copyDisk, type CopySource } from '../data-mover';
import { BASE_ALLOCATION, NbdClient, openNbd } from '../nbd-protocol';
import { mapAtOnce } from '../process';
import { sendLastReport } from './last-report';
import type { BackupSource } from './sources/backup-source';
import type { SnapshotDisk } from './sources/qemu-image/types';
import { AgentReport, PlanAnswer, PlanRequest, StartRequest } from '../wire/backup-protocol';
import { BlockDigests } from '../wire/block-digests';
import type { VmConfiguration } from '../wire/vm-configuration';

export interface RunnerDeps {
  source: BackupSource;
  /** A connection to the hub's NBD export of one disk of a job, negotiated and ready; the export may still be starting until `signal` ends the wait. */
  connectTarget: (nbd: StartRequest['disks'][number]['nbd'], signal: AbortSignal) => Promise<NbdClient>;
  /** Every report names its job and carries the job's correlation id, so the hub files it under the job's audit story. */
  report: (job: Pick<StartRequest, 'jobId' | 'correlationId' | 'causationId'>, report: AgentReport) => Promise<void>;
  /** How long a job's last report is tried for (LAST_REPORT_BUDGET_MS). */
  lastReportBudgetMs?: number;
  /** Hands the hub the block digests of one disk (src/wire/block-digests.ts), before that disk is reported complete. */
  uploadDigests: (job: Pick<StartRequest, 'jobId' | 'correlationId'>, diskId: string, digests: Buffer) => Promise<void>;
  /** The block digests (src/wire/block-digests.ts) of what a disk's target already holds, for a target the hub marked `known`. */
  knownDigests: (job: Pick<StartRequest, 'jobId' | 'correlationId'>, diskId: string) => Promise<Buffer>;
  /** Hands the hub the VM's configuration at the snapshot's instant (src/wire/vm-configuration.ts), before any disk is sent. */
  uploadConfiguration: (job: Pick<StartRequest, 'jobId' | 'correlationId'>, configuration: VmConfiguration) => Promise<void>;
  log: (level: 'info' | 'warn' | 'error', message: string) => void;
  /** The operator's throttle on each disk's reads (`agent run --max-rate`), none when absent. */
  maxBytesPerSecond?: number;
}

const PROGRESS_EVERY_MS = 1000;
/** Disks of one VM copied at the same time. */
const DISKS_AT_ONCE = 4;

type Report = (report: AgentReport) => Promise<void>;

/**
 * Runs backups on the agent: one snapshot for all disks of the VM, then each
 * disk copied into the hub's NBD export through the tunnel. Change tracking is
 * committed only once the hub has recorded the restore point; anything else keeps the old generation.
 */
export class BackupRunner {
  private readonly running = new Map<string, AbortController>();
  /**
   * Per VM, the backup this agent finished whose restore point the hub may or may not have recorded. Its
   * change tracking (the old base bitmap and the new one, both still recording) is settled when the next
   * backup of the VM says what the hub's chain ends with: built on the new point, it was recorded and is
   * committed; built on anything else, it was not, and the old base stays the base, so that incremental still
   * covers everything since the last recorded point. An agent restart forgets this; the bitmaps stay, and the
   * next successful backup keeps only its own.
   */
  private readonly unconfirmed = new Map<string, { newPointId: string; sincePointId: string | null }>();

  constructor(private readonly deps: RunnerDeps) {}

  async plan(request: PlanRequest): Promise<PlanAnswer> {
    const vm = await this.deps.source.getVm(request.vmId);
    const disks = vm.disks.map((d) => ({ diskId: d.id, virtualSize: d.virtualSize, format: d.format }));
    const leftOut = vm.leftOut ? { leftOut: vm.leftOut } : {};
    if (!request.sincePointId) return { mode: 'full', reason: 'no earlier restore point in this chain', disks, ...leftOut };
    const check = await this.deps.source.checkChain(request.vmId, request.sincePointId, request.sinceDisks);
    if (check.ok) return { mode: 'incremental', reason: null, disks, ...leftOut };
    return { mode: 'full', reason: check.reason ?? 'change tracking cannot continue the chain', disks, ...leftOut, ...(check.broken ? { chainBroken: true } : {}) };
  }

  isRunning(jobId: string): boolean {
    return this.running.has(jobId);
  }

  start(request: StartRequest): void {
    if (this.running.has(request.jobId)) throw new Error(`job ${request.jobId} is already running`);
    const abort = new AbortController();
    this.running.set(request.jobId, abort);
    void this.run(request, abort.signal).finally(() => this.running.delete(request.jobId));
  }

  cancel(jobId: string): boolean {
    const abort = this.running.get(jobId);
    abort?.abort(new Error('cancelled'));
    return abort !== undefined;
  }

  async stopAll(): Promise<void> {
    for (const abort of this.running.values()) abort.abort(new Error('agent shutting down'));
    while (this.running.size) await new Promise((r) => setTimeout(r, 20));
  }

  private async run(request: StartRequest, signal: AbortSignal): Promise<void> {
    const { source, log } = this.deps;
    const { jobId, vmId, restorePointId } = request;
    // One report at a time, in the order they were made: the job's record reads as the transfer happened.
    let previous: Promise<unknown> = Promise.resolve();
    const report: Report = (r) => {
      const sent = previous.then(() => this.deps.report(request, r));
      previous = sent.catch(() => undefined);
      return sent;
    };
    const sincePointId = request.type === 'incremental' ? request.sincePointId : null;
    let success = false;
    // The targets of the disks copied first are connected while the snapshot is taken: qemu-nbd 7.2 leaves Nagle
    // on, so its negotiation replies wait on our delayed ACKs, ~90 ms per connection here (docs/benchmarks.md,
    // backup). Only those: a connection opened early for a disk that waits its turn would sit idle through the
    // others' copies, long enough for a firewall between agent and hub to drop it.
    const early = new Map(request.disks.slice(0, DISKS_AT_ONCE).map((d) => [d.diskId, this.deps.connectTarget(d.nbd, signal)]));
    for (const connection of early.values()) connection.catch(() => undefined);
    try {
      await this.settle(vmId, sincePointId);
      const prepared = await source.prepareBackup(vmId, { newPointId: restorePointId, sincePointId, ...(sincePointId && request.sinceDisks ? { sinceDisks: request.sinceDisks } : {}) });
      if (prepared.mode !== request.type) throw new Error(`change tracking changed since the plan: ${prepared.reason ?? prepared.mode}`);
      const snapshot = await source.openSnapshot(vmId, { bitmaps: prepared.bitmaps });
      try {
        await report({ type: 'snapshot-created', snapshotId: snapshot.snapshotId, diskIds: snapshot.disks.map((d) => d.diskId), ...snapshot.consistency });
        if (snapshot.configuration) await this.deps.uploadConfiguration(request, snapshot.configuration);
        // The disks are copied at once, as many as DISKS_AT_ONCE: a VM's small system disk no longer waits for its
        // data disk. The first disk to fail stops the others.
        const failed = new AbortController();
        const stop = AbortSignal.any([signal, failed.signal]);
        await mapAtOnce(request.disks, DISKS_AT_ONCE, async (target) => {
          try {
            stop.throwIfAborted();
            const disk = snapshot.disks.find((d) => d.diskId === target.diskId);
            if (!disk) throw new Error(`the snapshot has no disk ${target.diskId}`);
            const changeRef = disk.changeRef ?? prepared.disks.find((d) => d.diskId === disk.diskId)?.newBitmap ?? null;
            const uploadDigests = (digests: Buffer) => this.deps.uploadDigests(request, target.diskId, digests);
            const known = target.known && request.type === 'full' ? await this.known(request, target.diskId) : null;
            const connection = early.get(target.diskId) ?? this.deps.connectTarget(target.nbd, stop);
            early.delete(target.diskId);
            await this.copyOne(report, uploadDigests, disk, connection, target, request.type, changeRef, stop, known);
          } catch (error) {
            failed.abort(error);
            throw error;
          }
        });
      } finally {
        await snapshot.close();
        await report({ type: 'snapshot-removed', snapshotId: snapshot.snapshotId }).catch(() => undefined);
      }
      success = true;
      await this.last(request, () => report({ type: 'finished' }), signal);
    } catch (error) {
      const reason = signal.aborted ? String((signal.reason as Error)?.message ?? 'cancelled') : error instanceof Error ? error.message : String(error);
      log('error', `backup ${jobId} of ${vmId} failed: ${reason}`);
      // Rolled back before the hub hears of the failure: a job that reads failed has left nothing on the VM, and an
      // operator who starts a shut-off VM then does not race qemu-img's rollback in its images.
      if (!success) await this.rollBack(vmId, restorePointId, sincePointId);
      await this.last(request, () => report({ type: 'failed', reason }), signal).catch((e) => log('error', `could not report the failure of ${jobId}: ${String(e)}`));
    } finally {
      for (const connection of early.values()) await closeWhenOpen(connection);
      if (success) this.unconfirmed.set(vmId, { newPointId: restorePointId, sincePointId });
    }
  }

  /** The job's last report, tried again while the hub cannot take it (src/agent/last-report.ts): the job is this agent's until it is delivered. */
  private last(request: StartRequest, send: () => Promise<void>, signal: AbortSignal): Promise<void> {
    return sendLastReport(send, { signal, budgetMs: this.deps.lastReportBudgetMs, onRetry: (e, ms) => this.deps.log('warn', `backup ${request.jobId}: its last report did not reach the hub (${String(e)}); trying again in ${ms} ms`) });
  }

  private async rollBack(vmId: string, newPointId: string, sincePointId: string | null): Promise<void> {
    await this.deps.source.completeBackup(vmId, { newPointId, sincePointId, success: false }).catch((e) => this.deps.log('warn', `change tracking of ${vmId} not rolled back: ${String(e)}`));
  }

  /**
   * Commits the previous backup's change tracking if the hub recorded its point (this incremental builds on it),
   * else rolls it back. A full says nothing about what the hub recorded: the bitmaps stay until a later backup tells.
   */
  private async settle(vmId: string, basePointId: string | null): Promise<void> {
    const previous = this.unconfirmed.get(vmId);
    if (!previous || basePointId === null) return;
    this.unconfirmed.delete(vmId);
    const recorded = basePointId === previous.newPointId;
    await this.deps.source
      .completeBackup(vmId, { ...previous, success: recorded })
      .catch((e) => this.deps.log('warn', `change tracking of ${vmId} not ${recorded ? 'committed' : 'rolled back'}: ${String(e)}`));
  }

  /** Copies one disk into its target; `connection` (to the target, maybe still opening) is closed here, whatever happens. */
  /**
   * What a target marked `known` holds, or null when the hub cannot say (its base went away): the copy then writes
   * every block, zeroes included, since the target does not read as zeroes either way.
   */
  private async known(request: StartRequest, diskId: string): Promise<BlockDigests | null> {
    try {
      return BlockDigests.decode(await this.deps.knownDigests(request, diskId));
    } catch (error) {
      this.deps.log('warn', `backup ${request.jobId}: the digests of what disk ${diskId}'s target holds could not be read, every block is sent: ${String(error)}`);
      return null;
    }
  }

  private async copyOne(report: Report, uploadDigests: (digests: Buffer) => Promise<void>, disk: SnapshotDisk, connection: Promise<NbdClient>, target: StartRequest['disks'][number], mode: 'full' | 'incremental', changeRef: string | null, signal: AbortSignal, known: BlockDigests | null): Promise<void> {
    const { bitmap, ranges } = disk;
    const contexts = [BASE_ALLOCATION, ...(bitmap ? [`qemu:dirty-bitmap:${bitmap}`] : [])];
    let src: (CopySource & { close(): Promise<void> }) | undefined;
    try {
      src = disk.open ? await disk.open() : await openNbd(disk.uri, { metaContexts: contexts });
      const dst = await connection;
      let lastReport = 0;
      let started = false;
      const summary = await copyDisk({
        source: src,
        target: dst,
        mode,
        bitmap,
        ranges,
        signal,
        // every block sent is hashed on the way, so a verify can later prove the repository still holds it
        digests: true,
        ...(known ? { known } : target.known ? { targetIsZero: false } : {}),
        maxBytesPerSecond: this.deps.maxBytesPerSecond,
        onProgress: (p) => {
          if (!started) {
            started = true;
            void report({ type: 'transfer-started', diskId: target.diskId, bytesPlanned: p.bytesPlanned }).catch(() => undefined);
          }
          if (Date.now() - lastReport >= PROGRESS_EVERY_MS) {
            lastReport = Date.now();
            void report({ type: 'transfer-progressed', diskId: target.diskId, bytesDone: p.bytesDone, bytesPlanned: p.bytesPlanned, rate: Math.round(p.rate) }).catch(() => undefined);
          }
        },
      });
      if (!started) await report({ type: 'transfer-started', diskId: target.diskId, bytesPlanned: summary.bytesPlanned });
      await uploadDigests(summary.digests!.encode());
      await report({
        type: 'transfer-completed',
        diskId: target.diskId,
        bytesWritten: summary.bytesWritten,
        bytesZeroed: summary.bytesZeroed,
        bytesPlanned: summary.bytesPlanned,
        durationMs: Math.round(summary.durationMs),
        changeRef,
        ...(known ? { bytesKnown: summary.bytesKnown } : {}),
      });
    } finally {
      await closeWhenOpen(connection);
      await src?.close().catch(() => undefined);
    }
  }
}

/** Closes a connection once it is open; one that failed to open needs nothing. */
async function closeWhenOpen(connection: Promise<NbdClient> | undefined): Promise<void> {
  await connection?.then((c) => c.close(), () => undefined).catch(() => undefined);
}
