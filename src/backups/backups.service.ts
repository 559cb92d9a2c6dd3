import { ForbiddenException, Inject, Injectable, Logger, OnApplicationBootstrap, OnModuleDestroy } from '@nestjs/common';
import { randomUUID } from 'node:crypto';
import { stat } from 'node:fs/promises';
import { join } from 'node:path';
import { DataSource } from 'typeorm';
import { AgentReport } from '../wire/backup-protocol';
import { AgentTunnel } from '../agents/agent-tunnel.service';
import { AgentsService, agentTokenName } from '../agents/agents.service';
import { ADMIN_ACTOR } from '../auth/admin-token';
import { HUB_CONFIG, HubConfig } from '../config/hub-config';
import { AggregateRepository } from '../eventing/aggregate-repository';
import { DomainError } from '../eventing/domain-error';
import { currentContext, runWithContext, SYSTEM_ACTOR } from '../eventing/request-context';
import { NbdExportsService } from '../nbd/exports/nbd-exports.service';
import { ProjectionsService } from '../projection-runner/projections.service';
import { writeManifest } from '../repositories/qcow2/manifest';
import { RepositoriesService } from '../repositories/registry/repositories.service';
import { toManifest } from '../restore-points/chain-files';
import { RestorePoint } from '../restore-points/chain.events';
import { pointOf } from '../restore-points/chain.aggregate';
import { RestorePointsService } from '../restore-points/restore-points.service';
import { SpaceCheck } from '../restore-points/space-check';
import { AgentCalls } from './agent-calls';
import { backupJobAggregate, BackupJobCommand, BackupJobState, isTerminal } from './backup-job.aggregate';
import { backupStream, RequestedType, Target } from './backup.events';
import { createTarget, removeTargets, targetPath } from './backup-targets';

/** An agent reconnecting (after a hub or network restart) gets this long before its job fails. */
const AGENT_CONNECT_GRACE_MS = 15_000;

interface Waiter {
  agentId: string;
  resolve: () => void;
  reject: (error: Error) => void;
}

/**
 * The backup workflow as a process manager: every step is an event on the
 * job's stream, every failure ends in BackupFailed plus complete cleanup, and
 * a restore point enters its chain only after every disk arrived.
 */
@Injectable()
export class BackupsService implements OnApplicationBootstrap, OnModuleDestroy {
  private readonly logger = new Logger('backups');
  private readonly queue: string[] = [];
  private readonly active = new Map<string, Promise<void>>();
  private readonly waiters = new Map<string, Waiter>();
  private stopping = false;

  constructor(
    @Inject(HUB_CONFIG) private readonly config: HubConfig,
    private readonly aggregates: AggregateRepository,
    private readonly dataSource: DataSource,
    private readonly agents: AgentsService,
    private readonly tunnel: AgentTunnel,
    private readonly calls: AgentCalls,
    private readonly repositories: RepositoriesService,
    private readonly points: RestorePointsService,
    private readonly exports: NbdExportsService,
    private readonly space: SpaceCheck,
    private readonly projections: ProjectionsService,
  ) {}

  /** Jobs a previous hub process left unfinished are finished or failed and cleaned up; queued ones run. */
  async onApplicationBootstrap(): Promise<void> {
    this.tunnel.events.on('disconnected', (agentId: string, reason: string) => {
      for (const waiter of this.waiters.values()) if (waiter.agentId === agentId) waiter.reject(new Error(`agent disconnected: ${reason}`));
    });
    this.exports.onUnexpectedExit((leaseId, detail) => {
      for (const [jobId, waiter] of this.waiters) {
        void this.job(jobId).then((s) => {
          if (s.targets.some((t) => t.leaseId === leaseId)) waiter.reject(new Error(`the NBD export of a target died: ${detail}`));
        });
      }
    });
    await this.projections.waitForCaughtUp('backup-jobs');
    const unfinished: { job_id: string; phase: string }[] = await this.dataSource.query(`SELECT job_id, phase FROM rm_backup_jobs WHERE phase NOT IN ('completed', 'failed') ORDER BY requested_at`);
    for (const row of unfinished) {
      const state = await this.job(row.job_id);
      if (isTerminal(state)) continue;
      if (state.phase === 'queued') this.queue.push(row.job_id);
      else await this.system(() => this.recover(state));
    }
    this.pump();
  }

  async onModuleDestroy(): Promise<void> {
    this.stopping = true;
    for (const waiter of this.waiters.values()) waiter.reject(new Error('the hub is shutting down'));
    await Promise.allSettled([...this.active.values()]);
  }

  async request(vmId: string, repositoryId: string, requestedType: RequestedType): Promise<{ jobId: string; position: string | null }> {
    const vm = await this.agents.vm(vmId);
    await this.repositories.definition(repositoryId);
    const busy: { job_id: string; phase: string }[] = await this.dataSource.query(
      `SELECT job_id, phase FROM rm_backup_jobs WHERE vm_id = $1 AND phase NOT IN ('completed', 'failed') LIMIT 1`,
      [vmId],
    );
    const busyHere = [...this.active.keys(), ...this.queue].length ? await this.findBusyInProcess(vmId) : null;
    const running = busyHere ?? busy[0]?.job_id;
    if (running) throw new DomainError('conflict', `VM ${vmId} already has a backup job running: ${running}`);
    const jobId = randomUUID();
    const result = await this.aggregates.execute(backupStream(jobId), backupJobAggregate, { kind: 'request', jobId, vmId, agentId: vm.agentId, repositoryId, requestedType });
    this.queue.push(jobId);
    this.pump();
    return { jobId, position: result.position };
  }

  async cancel(jobId: string): Promise<string | null> {
    const state = await this.job(jobId);
    if (!isTerminal(state) && !this.active.has(jobId) && !this.queue.includes(jobId)) {
      throw new DomainError('conflict', `backup job ${jobId} is not running in this hub process`);
    }
    const result = await this.execute(jobId, { kind: 'cancel' });
    const waiter = this.waiters.get(jobId);
    if (waiter) {
      await this.calls.cancel(state.agentId!, jobId).catch((e) => this.logger.warn(`telling agent to cancel ${jobId} failed: ${String(e)}`));
      waiter.reject(new Error('cancelled'));
    } else if (this.queue.includes(jobId)) {
      this.queue.splice(this.queue.indexOf(jobId), 1);
      await this.execute(jobId, { kind: 'fail', reason: 'cancelled' });
    }
    return result.position;
  }

  /** Facts the agent reports about its part of a job; only the job's own agent may report them. */
  async agentReport(jobId: string, report: AgentReport): Promise<string | null> {
    const state = await this.job(jobId);
    const agent = await this.agents.state(state.agentId!);
    const actor = currentContext().actor;
    if (actor !== agentTokenName(agent.name!) && actor !== ADMIN_ACTOR) throw new ForbiddenException(`only agent ${agent.name} may report on job ${jobId}`);
    const waiter = this.waiters.get(jobId);
    switch (report.type) {
      case 'snapshot-created':
        return (await this.execute(jobId, { kind: 'snapshotCreated', snapshotId: report.snapshotId, diskIds: report.diskIds })).position;
      case 'transfer-started':
        return (await this.execute(jobId, { kind: 'transferStarted', diskId: report.diskId, bytesPlanned: report.bytesPlanned })).position;
      case 'transfer-progressed':
        return (await this.execute(jobId, { kind: 'transferProgressed', diskId: report.diskId, bytesDone: report.bytesDone, bytesPlanned: report.bytesPlanned, rate: report.rate })).position;
      case 'transfer-completed': {
        const { type: _t, ...data } = report;
        return (await this.execute(jobId, { kind: 'transferCompleted', ...data })).position;
      }
      case 'snapshot-removed':
        return (await this.execute(jobId, { kind: 'snapshotRemoved' })).position;
      case 'finished':
        waiter?.resolve();
        return null;
      case 'failed':
        waiter?.reject(new Error(report.reason));
        return null;
    }
  }

  async job(jobId: string): Promise<BackupJobState> {
    const { state } = await this.aggregates.load(backupStream(jobId), backupJobAggregate);
    if (!state.jobId) throw new DomainError('not_found', `backup job ${jobId} does not exist`);
    return state;
  }

  private async findBusyInProcess(vmId: string): Promise<string | null> {
    for (const jobId of [...this.active.keys(), ...this.queue]) if ((await this.job(jobId)).vmId === vmId) return jobId;
    return null;
  }

  private pump(): void {
    while (!this.stopping && this.active.size < this.config.maxConcurrentBackups && this.queue.length) {
      const jobId = this.queue.shift()!;
      const run = this.system(() => this.run(jobId)).finally(() => {
        this.active.delete(jobId);
        this.pump();
      });
      this.active.set(jobId, run);
    }
  }

  private async run(jobId: string): Promise<void> {
    let state = await this.execute(jobId, { kind: 'start' }).then((r) => r.state);
    const root = (await this.repositories.definition(state.repositoryId!)).root;
    const createdFiles: string[] = [];
    let agentStarted = false;
    try {
      if (!(await this.tunnel.waitConnected(state.agentId!, AGENT_CONNECT_GRACE_MS))) throw new Error(`agent ${state.agentId} is not connected`);
      const chain = await this.points.chain(state.vmId!, state.repositoryId!);
      const last = chain.points.at(-1);
      const sincePointId = state.requestedType !== 'full' && last ? last.restorePointId : null;
      const plan = await this.calls.plan(state.agentId!, { vmId: state.vmId!, sincePointId });
      const restorePointId = `rp-${new Date().toISOString().replace(/[-:T]/g, '').slice(0, 14)}-${randomUUID().slice(0, 8)}`;
      const { type, reason } = decideType(state.requestedType!, last, plan);
      await this.execute(jobId, { kind: 'decideType', type, reason, restorePointId, sincePointId: type === 'incremental' ? last!.restorePointId : null });
      await this.space.assertFits(state.repositoryId!, plan.disks.map((d) => d.virtualSize));

      const targets: Target[] = [];
      for (const disk of plan.disks) {
        const file = targetPath(state.vmId!, disk.diskId, restorePointId);
        const parentFile = type === 'incremental' ? last!.disks.find((d) => d.diskId === disk.diskId)!.file : null;
        await createTarget(root, { diskId: disk.diskId, file, parentFile, virtualSize: disk.virtualSize });
        createdFiles.push(file);
        const exported = await this.exports.start({ jobId, diskId: disk.diskId, file: join(root, file), format: 'qcow2', readOnly: false, bitmap: null });
        this.tunnel.grant(state.agentId!, exported.port);
        targets.push({ diskId: disk.diskId, file, parentFile, virtualSize: disk.virtualSize, leaseId: exported.leaseId, port: exported.port, exportName: exported.exportName });
      }
      await this.execute(jobId, { kind: 'targetsPrepared', targets });
      await this.throwIfCancelled(jobId);
      state = await this.execute(jobId, { kind: 'snapshotRequested' }).then((r) => r.state);
      const finished = this.waitForAgent(jobId, state.agentId!);
      await this.calls.start(state.agentId!, {
        jobId,
        vmId: state.vmId!,
        type,
        restorePointId,
        sincePointId: state.sincePointId,
        disks: targets.map((t) => ({ diskId: t.diskId, nbd: { port: t.port, exportName: t.exportName } })),
      });
      agentStarted = true;
      await this.throwIfCancelled(jobId);
      await finished;
      await this.finish(jobId, root);
    } catch (error) {
      const reason = error instanceof Error ? error.message : String(error);
      this.logger.error(`backup ${jobId} failed: ${reason}`);
      const phase = (await this.job(jobId)).phase!;
      // Clean first, then record the failure: a job that reads "failed" has left nothing behind.
      await this.cleanUp(jobId, root, createdFiles, agentStarted);
      if (!isTerminal(await this.job(jobId))) await this.execute(jobId, { kind: 'fail', reason, phase });
    } finally {
      this.waiters.delete(jobId);
    }
  }

  /** Every disk arrived: stop the exports (flushing them), then record the restore point, then complete. */
  private async finish(jobId: string, root: string): Promise<void> {
    const state = await this.job(jobId);
    await this.releaseExports(state);
    await this.execute(jobId, { kind: 'targetsReleased', filesRemoved: [] });
    const point: RestorePoint = {
      restorePointId: state.restorePointId!,
      vmId: state.vmId!,
      repositoryId: state.repositoryId!,
      backupId: jobId,
      type: state.type!,
      parentId: state.sincePointId,
      createdAt: new Date().toISOString(),
      disks: await Promise.all(
        state.targets.map(async (t) => ({
          diskId: t.diskId,
          file: t.file,
          parentFile: t.parentFile,
          virtualSize: t.virtualSize,
          fileBytes: (await stat(join(root, t.file))).size,
          changeRef: state.disks[t.diskId]?.changeRef ?? null,
        })),
      ),
    };
    await writeManifest(root, toManifest(point));
    await this.points.add(point);
    await this.execute(jobId, { kind: 'complete' });
  }

  private async cleanUp(jobId: string, root: string, createdFiles: string[], agentStarted: boolean): Promise<void> {
    const state = await this.job(jobId);
    if (agentStarted && this.tunnel.isConnected(state.agentId!)) await this.calls.cancel(state.agentId!, jobId).catch(() => undefined);
    await this.releaseExports(state);
    const files = [...new Set([...createdFiles, ...state.targets.map((t) => t.file)])];
    const removed = await removeTargets(root, state.vmId!, state.restorePointId ?? 'none', files).catch((e) => {
      this.logger.error(`could not remove the partial files of ${jobId}: ${String(e)}`);
      return [];
    });
    await this.execute(jobId, { kind: 'targetsReleased', filesRemoved: removed });
  }

  private async releaseExports(state: BackupJobState): Promise<void> {
    for (const lease of await this.exports.leasesOfJob(state.jobId!)) {
      this.tunnel.revoke(state.agentId!, lease.port);
      await this.exports.stop(lease.leaseId, 'backup job ended').catch((e) => this.logger.warn(`stopping export ${lease.leaseId}: ${String(e)}`));
    }
  }

  /** At start: a job whose restore point made it into the chain is completed; any other is failed and cleaned up. */
  private async recover(state: BackupJobState): Promise<void> {
    const jobId = state.jobId!;
    const root = (await this.repositories.definition(state.repositoryId!)).root;
    const chain = await this.points.chain(state.vmId!, state.repositoryId!);
    if (state.restorePointId && pointOf(chain, state.restorePointId) && Object.values(state.disks).every((d) => d.done)) {
      await this.releaseExports(state);
      await this.execute(jobId, { kind: 'targetsReleased', filesRemoved: [] });
      await this.execute(jobId, { kind: 'complete' });
      return;
    }
    this.logger.warn(`backup ${jobId} was interrupted by a hub restart in phase ${state.phase}; cleaning up and failing it`);
    const files = state.restorePointId ? state.targets.map((t) => t.file).concat((await this.plannedFiles(state)) ?? []) : [];
    await this.cleanUp(jobId, root, files, this.tunnel.isConnected(state.agentId!));
    await this.execute(jobId, { kind: 'fail', reason: `interrupted by a hub restart during ${state.phase}`, phase: state.phase! });
  }

  /** Target files may exist before BackupTargetsPrepared was recorded; they are named after the restore point. */
  private async plannedFiles(state: BackupJobState): Promise<string[]> {
    const vm = await this.agents.vm(state.vmId!).catch(() => null);
    return vm ? vm.disks.map((d) => targetPath(state.vmId!, d.diskId, state.restorePointId!)) : [];
  }

  private waitForAgent(jobId: string, agentId: string): Promise<void> {
    const done = new Promise<void>((resolve, reject) => {
      this.waiters.set(jobId, { agentId, resolve, reject });
      if (!this.tunnel.isConnected(agentId)) reject(new Error('agent is not connected'));
    });
    done.catch(() => undefined);
    return done;
  }

  /** A cancel that arrives while the job is still preparing takes effect at the next step. */
  private async throwIfCancelled(jobId: string): Promise<void> {
    if ((await this.job(jobId)).cancelRequested) throw new Error('cancelled');
  }

  private execute(jobId: string, command: BackupJobCommand) {
    return this.aggregates.execute(backupStream(jobId), backupJobAggregate, command);
  }

  private system<T>(work: () => Promise<T>): Promise<T> {
    return runWithContext({ correlationId: currentContext().correlationId, actor: SYSTEM_ACTOR }, work);
  }
}

function decideType(
  requested: RequestedType,
  last: RestorePoint | undefined,
  plan: { mode: 'full' | 'incremental'; reason: string | null; disks: { diskId: string; virtualSize: number }[] },
): { type: 'full' | 'incremental'; reason: string } {
  if (requested === 'full') return { type: 'full', reason: 'full backup requested' };
  const layoutChange = last && describeLayoutChange(last, plan.disks);
  const why = !last ? 'no restore point in this chain yet' : layoutChange ?? (plan.mode === 'full' ? plan.reason ?? 'the source cannot continue the chain' : null);
  if (why === null) return { type: 'incremental', reason: `changes since ${last!.restorePointId} (dirty bitmaps agree with the chain)` };
  if (requested === 'incremental') throw new DomainError('conflict', `an incremental backup is not possible: ${why}`);
  return { type: 'full', reason: why };
}

function describeLayoutChange(last: RestorePoint, disks: { diskId: string; virtualSize: number }[]): string | null {
  const before = last.disks.map((d) => d.diskId).sort().join(',');
  const now = disks.map((d) => d.diskId).sort().join(',');
  if (before !== now) return `the VM's disks changed (${before} -> ${now})`;
  const resized = disks.find((d) => last.disks.find((l) => l.diskId === d.diskId)!.virtualSize > d.virtualSize);
  return resized ? `disk ${resized.diskId} shrank` : null;
}
