import { Inject, Injectable, Logger, OnApplicationBootstrap, OnModuleDestroy } from '@nestjs/common';
import { CommandBus } from '@nestjs/cqrs';
import { join } from 'node:path';
import { HUB_CONFIG, HubConfig } from '../../config/hub-config';
import { HUB_INSTANCE } from '../../config/hub-instance';
import { DomainError } from '../../eventing/domain-error';
import { currentContext, RequestContext, runWithContext, SYSTEM_ACTOR } from '../../eventing/request-context';
import type { NbdPsk } from '../../nbd-protocol/tls-psk';
import { ProjectionsService } from '../../projection-runner/projections.service';
import { QemuNbdExit, QemuNbdManager } from '../qemu-nbd';
import { AllocateNbdPortCommand } from '../ports/commands/allocate-nbd-port.command';
import { ReleaseJobPortsCommand } from '../ports/commands/release-job-ports.command';
import { ReleaseNbdPortCommand } from '../ports/commands/release-nbd-port.command';
import { leaseById } from '../ports/nbd-port-pool.aggregate';
import { NbdPortPool } from '../ports/nbd-port-pool';
import { ExportPathPolicy } from './export-path-policy';
import { RecordQemuNbdExitedCommand } from './commands/record-qemu-nbd-exited.command';
import { RecordQemuNbdStartFailedCommand } from './commands/record-qemu-nbd-start-failed.command';
import { RecordQemuNbdStartedCommand } from './commands/record-qemu-nbd-started.command';
import { RecordQemuNbdStoppedCommand } from './commands/record-qemu-nbd-stopped.command';
import { RequestQemuNbdStartCommand } from './commands/request-qemu-nbd-start.command';
import { QemuNbdProcessStates } from './qemu-nbd-process-states';
import { ExportTarget } from './qemu-nbd.events';

export interface ExportRequest {
  jobId: string;
  diskId: string;
  file: string;
  format: 'qcow2' | 'raw' | 'chunks';
  readOnly: boolean;
  /** format 'chunks', not readOnly: `file` is the index of a new point, committed when the export stops. */
  create?: { size: number; base: string | null };
  bitmap: string | null;
  /** For an agent: TLS required, with a key of its own (StartedExport.psk), listening on SENDENSE_NBD_BIND. */
  tls?: boolean;
}

export interface StartedExport {
  leaseId: string;
  port: number;
  exportName: string;
  pid: number;
  position: string | null;
  /** Never recorded in an event: it is handed to the one agent the export is for. */
  psk?: NbdPsk;
}

const LEASES = 'nbd-leases';
const PROCESSES = 'qemu-nbd-processes';

/**
 * The workflow around every qemu-nbd this hub process runs: lease a port, start the process
 * as our own child, and send a command for each step. An exit nobody asked for is recorded
 * and its lease released at once; a stop releases the lease only after the process is gone.
 */
@Injectable()
export class NbdExportsService implements OnApplicationBootstrap, OnModuleDestroy {
  private readonly logger = new Logger('nbd-exports');
  private readonly manager: QemuNbdManager;
  private readonly nbdBind: string;
  private readonly pending = new Set<Promise<unknown>>();
  private readonly exitListeners: ((leaseId: string, detail: string) => void)[] = [];
  /** Whose story an exit belongs to: the stop that asked for it, else the start it ends. */
  private readonly exitContexts = new Map<string, { stop?: RequestContext; start?: RequestContext }>();
  private markReconciled!: () => void;
  private readonly kept = new Set<string>();
  /** Nest runs the start-up hooks of all providers at once: features that own exports wait for the adopt-or-record pass here. */
  private readonly reconciled = new Promise<void>((resolve) => (this.markReconciled = resolve));

  constructor(
    @Inject(HUB_CONFIG) config: HubConfig,
    @Inject(HUB_INSTANCE) private readonly instance: string,
    private readonly commands: CommandBus,
    private readonly processes: QemuNbdProcessStates,
    private readonly pool: NbdPortPool,
    private readonly paths: ExportPathPolicy,
    private readonly projections: ProjectionsService,
  ) {
    this.nbdBind = config.nbdBind;
    this.manager = new QemuNbdManager({
      runDir: join(config.dataDir, 'run'),
      // Targets hold no dirty bitmaps, so a SIGKILL after 10 s costs nothing but the unflushed data of a job that is
      // failing anyway. A chunk point's writer commits when stopped, and gets the manager's commit timeout instead.
      stopTimeoutMs: 10_000,
      onExit: (exit) => this.track(this.recordExit(exit)),
      log: (level, message) => this.logger[level === 'info' ? 'log' : level](message),
    });
  }

  /** Reconciles before the hub serves, and lets the read models show the outcome. */
  async onApplicationBootstrap(): Promise<void> {
    try {
      await this.reconcile();
    } finally {
      this.markReconciled();
    }
    await Promise.all([this.projections.waitForCaughtUp(LEASES), this.projections.waitForCaughtUp(PROCESSES)]);
  }

  async onModuleDestroy(): Promise<void> {
    for (const running of this.manager.list()) {
      if (this.kept.has(running.leaseId)) {
        this.logger.warn(`leaving export ${running.leaseId} running: a domain reads from it (the next start adopts it)`);
        this.manager.forget(running.leaseId);
        continue;
      }
      await this.stop(running.leaseId, 'hub shutdown').catch((e) => this.logger.error(`stopping export ${running.leaseId} at shutdown failed: ${String(e)}`));
    }
    await this.settle();
  }

  /**
   * An export a running domain reads from (instant recovery) outlives a clean stop of the hub, as it outlives a
   * crash: the next start adopts it, and the guest's reads never see it gone.
   */
  keepAtShutdown(leaseId: string): void {
    this.kept.add(leaseId);
  }

  /** Resolves once the exports of an earlier run were adopted or recorded as gone (isRunning tells which). */
  whenReconciled(): Promise<void> {
    return this.reconciled;
  }

  /** Called after an export died without being asked to (its exit is recorded and its lease released). */
  onUnexpectedExit(listener: (leaseId: string, detail: string) => void): void {
    this.exitListeners.push(listener);
  }

  /** Active leases of a job on this host, with or without a running export. */
  async leasesOfJob(jobId: string): Promise<{ leaseId: string; port: number }[]> {
    return Object.values((await this.pool.state()).leases).filter((l) => l.jobId === jobId);
  }

  /** The exports this hub process runs, each with the job it serves. */
  async running(): Promise<{ leaseId: string; jobId: string }[]> {
    const leases = Object.values((await this.pool.state()).leases);
    return this.manager.list().flatMap((r) => leases.filter((l) => l.leaseId === r.leaseId).map((l) => ({ leaseId: l.leaseId, jobId: l.jobId })));
  }

  liveCount(): number {
    return this.manager.list().length;
  }

  /** Whether this hub process runs the lease's qemu-nbd. */
  isRunning(leaseId: string): boolean {
    return this.manager.list().some((r) => r.leaseId === leaseId);
  }

  async start(request: ExportRequest): Promise<StartedExport> {
    return (await this.begin(request)).serving;
  }

  /**
   * The export leased, recorded and spawned, and the wait for it to serve: a backup hands the port and key to its
   * agent at once, and the agent takes its snapshot while the export starts (its connection waits for the port).
   * `serving` fails as start does, with the lease released.
   */
  async begin(request: ExportRequest): Promise<Omit<StartedExport, 'pid' | 'position'> & { serving: Promise<StartedExport> }> {
    if (request.bitmap && request.format !== 'qcow2') throw new DomainError('invalid', 'a dirty bitmap can only be exported from a qcow2 image');
    if ((request.format === 'chunks' && !request.readOnly) !== !!request.create) throw new DomainError('invalid', 'a writable chunk export creates a new point, and only it');
    // a new point's index is not there yet: its store is what must be inside a repository
    const file = request.create ? await this.paths.checkNew(request.file) : await this.paths.check(request.file);
    const base = request.create?.base ? await this.paths.check(request.create.base) : null;
    const lease = await this.commands.execute(new AllocateNbdPortCommand(request.jobId, request.diskId));
    const exportName = `${request.jobId}-${request.diskId}`;
    const target: ExportTarget = { ...request, ...(request.create ? { create: { size: request.create.size, base } } : {}), tls: request.tls ?? false, file, leaseId: lease.leaseId, port: lease.port, exportName, hubInstance: this.instance };
    try {
      await this.commands.execute(new RequestQemuNbdStartCommand(lease.leaseId, target));
    } catch (error) {
      await this.release(lease.port, lease.leaseId, 'export request failed');
      throw error;
    }
    const failed = async (error: unknown): Promise<never> => {
      const reason = error instanceof Error ? error.message : String(error);
      await this.commands.execute(new RecordQemuNbdStartFailedCommand(lease.leaseId, reason));
      await this.release(lease.port, lease.leaseId, 'qemu-nbd failed to start');
      throw new DomainError('conflict', `${request.format === 'chunks' ? 'chunk-nbd' : 'qemu-nbd'} could not export ${file}: ${reason}`);
    };
    const tls = request.tls ? { bind: this.nbdBind } : undefined;
    const launched = await this.manager.launch({ leaseId: lease.leaseId, port: lease.port, file, format: request.format, readOnly: request.readOnly, ...(target.create ? { create: target.create } : {}), exportName, bitmap: request.bitmap ?? undefined, tls }).catch(failed);
    const context = currentContext();
    const serving = launched.serving.then(async (running) => {
      const started = await runWithContext(context, () => this.commands.execute(new RecordQemuNbdStartedCommand(lease.leaseId, running.pid, running.args)));
      this.exitContexts.set(lease.leaseId, { start: { correlationId: context.correlationId, actor: SYSTEM_ACTOR, causationId: started.eventIds[0] } });
      return { leaseId: lease.leaseId, port: lease.port, exportName, pid: running.pid, position: started.position, psk: running.psk };
    }, (error: unknown) => runWithContext(context, () => failed(error)));
    serving.catch(() => undefined);
    return { leaseId: lease.leaseId, port: lease.port, exportName, psk: launched.psk, serving };
  }

  /** Stops the export (if it still runs) and releases its lease once the process is gone. */
  async stop(leaseId: string, reason = 'export stopped'): Promise<string | null> {
    const state = await this.processes.of(leaseId);
    if (!state.target) throw new DomainError('not_found', `no export for lease ${leaseId}`);
    if (state.target.hubInstance !== this.instance) throw new DomainError('conflict', `export ${leaseId} belongs to another hub process`);
    this.exitContexts.set(leaseId, { ...this.exitContexts.get(leaseId), stop: currentContext() });
    await this.manager.stop(leaseId);
    await this.settle();
    await this.commands.execute(new RecordQemuNbdStoppedCommand(leaseId));
    this.exitContexts.delete(leaseId);
    return this.release(state.target.port, leaseId, reason);
  }

  /** For a caller that reads right after: starts the export and waits until the read models show it (or its failure). */
  async startAndShow(request: ExportRequest): Promise<Omit<StartedExport, 'position'>> {
    const { position, ...started } = await this.start(request).catch(async (error) => {
      // A failed start still recorded events (lease, failure, release); let the read models show them.
      await Promise.all([this.projections.waitForCaughtUp(PROCESSES), this.projections.waitForCaughtUp(LEASES)]);
      throw error;
    });
    await this.projections.waitFor(PROCESSES, position);
    return started;
  }

  /** For a caller that reads right after: stops the export and waits until the read models show the stop and the release. */
  async stopAndShow(leaseId: string): Promise<void> {
    const position = await this.stop(leaseId);
    await Promise.all([this.projections.waitFor(PROCESSES, position), this.projections.waitFor(LEASES, position)]);
  }

  /**
   * The exports a hub process that is gone for good ran on `leaseIds`, recorded as ended (`QemuNbdExited`, `reason` as
   * what it said, or a start failed): no process here can stop them, and recorded running they held their files
   * against deletes for ever. Their processes went with that process's host, or its next start stops them (it finds
   * them ended, releases their ports and stops what still runs). A lease another live process serves is left alone.
   * Answers once the read model shows them ended: a delete right after is not refused for them.
   */
  async abandon(leaseIds: readonly string[], goneInstance: string, reason: string): Promise<void> {
    let position: string | null = null;
    for (const leaseId of leaseIds) {
      const state = await this.processes.of(leaseId);
      if (state.target?.hubInstance !== goneInstance) continue;
      if (state.phase === 'running') position = (await this.commands.execute(new RecordQemuNbdExitedCommand(leaseId, { pid: state.pid ?? 0, code: null, signal: null, stderrTail: reason, expected: false }))).position;
      else if (state.phase === 'starting') position = (await this.commands.execute(new RecordQemuNbdStartFailedCommand(leaseId, reason))).position;
    }
    await this.projections.waitFor(PROCESSES, position);
  }

  /** Releases every port of a job on this host, stopping the exports this process runs on them first. */
  async releaseJob(jobId: string): Promise<{ released: number[] }> {
    const reason = 'job ports released';
    const leases = await this.leasesOfJob(jobId);
    let position: string | null = null;
    for (const lease of leases) if (this.isRunning(lease.leaseId)) position = await this.stop(lease.leaseId, reason);
    const result = await this.commands.execute(new ReleaseJobPortsCommand(jobId, reason));
    await Promise.all([this.projections.waitFor(LEASES, result.position ?? position), this.projections.waitFor(PROCESSES, position)]);
    return { released: [...new Set([...leases.map((l) => l.port), ...result.ports])].sort((a, b) => a - b) };
  }

  /** After a crash: adopt exports that still run, record the ones that died, stop the ones nobody owns. */
  async reconcile(): Promise<void> {
    const leftovers = new Map(this.manager.readPidFiles().map((r) => [r.leaseId, r]));
    const pool = await this.pool.state();
    for (const lease of Object.values(pool.leases)) {
      const state = await this.processes.of(lease.leaseId);
      if (!state.target || state.target.hubInstance !== this.instance) continue;
      const record = leftovers.get(lease.leaseId);
      if (state.phase === 'running' && record && this.manager.adopt(record)) {
        leftovers.delete(lease.leaseId);
        this.logger.log(`adopted qemu-nbd pid ${record.pid} for lease ${lease.leaseId} on port ${lease.port}`);
        continue;
      }
      if (state.phase === 'running') {
        const exit = { pid: state.pid ?? 0, code: null, signal: null, stderrTail: 'qemu-nbd was no longer running when the hub restarted', expected: false };
        await this.commands.execute(new RecordQemuNbdExitedCommand(lease.leaseId, exit));
      } else if (state.phase === 'starting') {
        await this.commands.execute(new RecordQemuNbdStartFailedCommand(lease.leaseId, 'the hub stopped before the export was ready'));
      }
      await this.release(lease.port, lease.leaseId, 'reconciled at hub start: qemu-nbd not running');
    }
    for (const orphan of leftovers.values()) {
      this.logger.warn(`stopping leftover qemu-nbd pid ${orphan.pid} (lease ${orphan.leaseId}) that no active lease owns`);
      await this.manager.killOrphan(orphan).catch((e) => this.logger.error(`could not stop leftover qemu-nbd ${orphan.pid}: ${String(e)}`));
    }
  }

  private async recordExit(exit: QemuNbdExit): Promise<void> {
    const contexts = this.exitContexts.get(exit.leaseId);
    if (!exit.expected) this.exitContexts.delete(exit.leaseId);
    const context = (exit.expected ? contexts?.stop : contexts?.start) ?? currentContext();
    try {
      await runWithContext(context, async () => {
        const { pid, code, signal, stderrTail, expected } = exit;
        await this.commands.execute(new RecordQemuNbdExitedCommand(exit.leaseId, { pid, code, signal, stderrTail, expected }));
        if (expected) return;
        this.logger.error(`qemu-nbd for lease ${exit.leaseId} exited unexpectedly (code ${code}, signal ${signal}): ${stderrTail}`);
        const lease = leaseById(await this.pool.state(), exit.leaseId);
        if (lease) await this.release(lease.port, exit.leaseId, `qemu-nbd exited unexpectedly (${signal ?? `code ${code}`})`);
        for (const listener of this.exitListeners) listener(exit.leaseId, `qemu-nbd pid ${pid} exited (${signal ?? `code ${code}`}): ${stderrTail}`);
      });
    } catch (error) {
      this.logger.error(`recording the exit of qemu-nbd for lease ${exit.leaseId} failed; the next start reconciles it: ${String(error)}`);
    }
  }

  private async release(port: number, leaseId: string, reason: string): Promise<string | null> {
    try {
      return (await this.commands.execute(new ReleaseNbdPortCommand(port, reason, leaseId))).position;
    } catch (error) {
      if (error instanceof DomainError && error.kind === 'not_found') return null;
      throw error;
    }
  }

  private track(work: Promise<unknown>): void {
    this.pending.add(work);
    void work.finally(() => this.pending.delete(work));
  }

  private async settle(): Promise<void> {
    while (this.pending.size) await Promise.allSettled([...this.pending]);
  }
}
