import { Inject, Injectable, Logger, OnApplicationBootstrap, OnModuleDestroy } from '@nestjs/common';
import { CommandBus } from '@nestjs/cqrs';
import { join } from 'node:path';
import { HUB_CONFIG, HubConfig } from '../../config/hub-config';
import { AggregateRepository } from '../../eventing/aggregate-repository';
import { DomainError } from '../../eventing/domain-error';
import { HUB_INSTANCE } from '../../config/hub-instance';
import { ProjectionsService } from '../../projection-runner/projections.service';
import { QemuNbdExit, QemuNbdManager } from '../qemu-nbd';
import { AllocateNbdPortCommand, ReleaseNbdPortCommand } from '../ports/nbd-port.commands';
import { Allocated } from '../ports/nbd-port.handlers';
import { leaseById } from '../ports/nbd-port-pool.aggregate';
import { NbdPortPool } from '../ports/nbd-port-pool';
import { ExportPathPolicy } from './export-path-policy';
import { qemuNbdProcessAggregate, QemuNbdCommand } from './qemu-nbd-process.aggregate';
import { ExportTarget, qemuNbdStream } from './qemu-nbd.events';

export interface ExportRequest {
  jobId: string;
  diskId: string;
  file: string;
  format: 'qcow2' | 'raw';
  readOnly: boolean;
  bitmap: string | null;
}

export interface StartedExport {
  leaseId: string;
  port: number;
  exportName: string;
  pid: number;
  position: string | null;
}

/**
 * Every qemu-nbd this hub runs: lease a port, start the process as our own
 * child, and record each step. An exit nobody asked for is recorded and its
 * lease released at once; a stop releases the lease only after the process is gone.
 */
@Injectable()
export class NbdExportsService implements OnApplicationBootstrap, OnModuleDestroy {
  private readonly logger = new Logger('nbd-exports');
  private readonly manager: QemuNbdManager;
  private readonly pending = new Set<Promise<unknown>>();
  private readonly exitListeners: ((leaseId: string, detail: string) => void)[] = [];

  constructor(
    @Inject(HUB_CONFIG) config: HubConfig,
    @Inject(HUB_INSTANCE) private readonly instance: string,
    private readonly commands: CommandBus,
    private readonly aggregates: AggregateRepository,
    private readonly pool: NbdPortPool,
    private readonly paths: ExportPathPolicy,
    private readonly projections: ProjectionsService,
  ) {
    this.manager = new QemuNbdManager({
      runDir: join(config.dataDir, 'run'),
      // Targets hold no dirty bitmaps, so a SIGKILL after 10 s costs nothing but the unflushed data of a job that is failing anyway.
      stopTimeoutMs: 10_000,
      onExit: (exit) => this.track(this.recordExit(exit)),
      log: (level, message) => this.logger[level === 'info' ? 'log' : level](message),
    });
  }

  /** Reconciles before the hub serves, and lets the read models show the outcome. */
  async onApplicationBootstrap(): Promise<void> {
    await this.reconcile();
    await Promise.all([this.projections.waitForCaughtUp('nbd-leases'), this.projections.waitForCaughtUp('qemu-nbd-processes')]);
  }

  async onModuleDestroy(): Promise<void> {
    for (const running of this.manager.list()) {
      await this.stop(running.leaseId, 'hub shutdown').catch((e) => this.logger.error(`stopping export ${running.leaseId} at shutdown failed: ${String(e)}`));
    }
    await this.settle();
  }

  /** Called after an export died without being asked to (its exit is recorded and its lease released). */
  onUnexpectedExit(listener: (leaseId: string, detail: string) => void): void {
    this.exitListeners.push(listener);
  }

  /** Active leases of a job on this host, with or without a running export. */
  async leasesOfJob(jobId: string): Promise<{ leaseId: string; port: number }[]> {
    return Object.values((await this.pool.state()).leases).filter((l) => l.jobId === jobId);
  }

  liveCount(): number {
    return this.manager.list().length;
  }

  isRunning(leaseId: string): boolean {
    return this.manager.list().some((r) => r.leaseId === leaseId);
  }

  async start(request: ExportRequest): Promise<StartedExport> {
    if (request.bitmap && request.format !== 'qcow2') throw new DomainError('invalid', 'a dirty bitmap can only be exported from a qcow2 image');
    const file = await this.paths.check(request.file);
    const lease: Allocated = await this.commands.execute(new AllocateNbdPortCommand(request.jobId, request.diskId));
    const exportName = `${request.jobId}-${request.diskId}`;
    const target: ExportTarget = { ...request, file, leaseId: lease.leaseId, port: lease.port, exportName, hubInstance: this.instance };
    try {
      await this.record(lease.leaseId, { kind: 'requestStart', target });
    } catch (error) {
      await this.release(lease.port, lease.leaseId, 'export request failed');
      throw error;
    }
    let running;
    try {
      running = await this.manager.start({ leaseId: lease.leaseId, port: lease.port, file, format: request.format, readOnly: request.readOnly, exportName, bitmap: request.bitmap ?? undefined });
    } catch (error) {
      const reason = error instanceof Error ? error.message : String(error);
      await this.record(lease.leaseId, { kind: 'recordStartFailed', reason });
      await this.release(lease.port, lease.leaseId, 'qemu-nbd failed to start');
      throw new DomainError('conflict', `qemu-nbd could not export ${file}: ${reason}`);
    }
    const position = await this.record(lease.leaseId, { kind: 'recordStarted', pid: running.pid, args: running.args });
    return { leaseId: lease.leaseId, port: lease.port, exportName, pid: running.pid, position };
  }

  /** Stops the export (if it still runs) and releases its lease once the process is gone. */
  async stop(leaseId: string, reason = 'export stopped'): Promise<string | null> {
    const { state } = await this.aggregates.load(qemuNbdStream(leaseId), qemuNbdProcessAggregate);
    if (!state.target) throw new DomainError('not_found', `no export for lease ${leaseId}`);
    if (state.target.hubInstance !== this.instance) throw new DomainError('conflict', `export ${leaseId} belongs to another hub process`);
    await this.manager.stop(leaseId);
    await this.settle();
    await this.record(leaseId, { kind: 'recordStopped' });
    return this.release(state.target.port, leaseId, reason);
  }

  /** After a crash: adopt exports that still run, record the ones that died, stop the ones nobody owns. */
  async reconcile(): Promise<void> {
    const leftovers = new Map(this.manager.readPidFiles().map((r) => [r.leaseId, r]));
    const pool = await this.pool.state();
    for (const lease of Object.values(pool.leases)) {
      const { state } = await this.aggregates.load(qemuNbdStream(lease.leaseId), qemuNbdProcessAggregate);
      if (!state.target || state.target.hubInstance !== this.instance) continue;
      const record = leftovers.get(lease.leaseId);
      if (state.phase === 'running' && record && this.manager.adopt(record)) {
        leftovers.delete(lease.leaseId);
        this.logger.log(`adopted qemu-nbd pid ${record.pid} for lease ${lease.leaseId} on port ${lease.port}`);
        continue;
      }
      if (state.phase === 'running') {
        await this.record(lease.leaseId, { kind: 'recordExit', pid: state.pid ?? 0, code: null, signal: null, stderrTail: 'qemu-nbd was no longer running when the hub restarted', expected: false });
      } else if (state.phase === 'starting') {
        await this.record(lease.leaseId, { kind: 'recordStartFailed', reason: 'the hub stopped before the export was ready' });
      }
      await this.release(lease.port, lease.leaseId, 'reconciled at hub start: qemu-nbd not running');
    }
    for (const orphan of leftovers.values()) {
      this.logger.warn(`stopping leftover qemu-nbd pid ${orphan.pid} (lease ${orphan.leaseId}) that no active lease owns`);
      await this.manager.killOrphan(orphan).catch((e) => this.logger.error(`could not stop leftover qemu-nbd ${orphan.pid}: ${String(e)}`));
    }
  }

  private async recordExit(exit: QemuNbdExit): Promise<void> {
    try {
      await this.record(exit.leaseId, { kind: 'recordExit', pid: exit.pid, code: exit.code, signal: exit.signal, stderrTail: exit.stderrTail, expected: exit.expected });
      if (exit.expected) return;
      this.logger.error(`qemu-nbd for lease ${exit.leaseId} exited unexpectedly (code ${exit.code}, signal ${exit.signal}): ${exit.stderrTail}`);
      const lease = leaseById(await this.pool.state(), exit.leaseId);
      if (lease) await this.release(lease.port, exit.leaseId, `qemu-nbd exited unexpectedly (${exit.signal ?? `code ${exit.code}`})`);
      for (const listener of this.exitListeners) listener(exit.leaseId, `qemu-nbd pid ${exit.pid} exited (${exit.signal ?? `code ${exit.code}`}): ${exit.stderrTail}`);
    } catch (error) {
      this.logger.error(`recording the exit of qemu-nbd for lease ${exit.leaseId} failed; the next start reconciles it: ${String(error)}`);
    }
  }

  private async record(leaseId: string, command: QemuNbdCommand): Promise<string | null> {
    return (await this.aggregates.execute(qemuNbdStream(leaseId), qemuNbdProcessAggregate, command)).position;
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
