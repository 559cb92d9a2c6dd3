import { Inject, Injectable, Logger, OnApplicationBootstrap, OnModuleDestroy } from '@nestjs/common';
import { CommandBus, EventBus, ofType, QueryBus } from '@nestjs/cqrs';
import { randomUUID } from 'node:crypto';
import { join } from 'node:path';
import { Subscription } from 'rxjs';
import { AgentTunnel } from '../agents/agent-tunnel.service';
import { AgentsService } from '../agents/agents.service';
import { HUB_CONFIG, HubConfig } from '../config/hub-config';
import { HUB_INSTANCE } from '../config/hub-instance';
import { abortableSleep } from '../event-store/abortable-sleep';
import { watchAgentJob } from './agent-job-watch';
import { EVENT_STORE, EventStore } from '../event-store/event-store.port';
import { Command } from '../eventing/command';
import { JobStories, Story as JobStory } from '../eventing/job-story';
import { NbdExportsService } from '../nbd/exports/nbd-exports.service';
import type { NbdPsk } from '../nbd-protocol/tls-psk';
import { HubLiveness, leftByGoneProcess, OwnersGone } from '../projection-runner/hub-liveness';
import { ProjectionsService } from '../projection-runner/projections.service';
import { repeatAfter } from '../process/repeat';
import { ChunkSpaceWorkflow } from '../repositories/chunk-space.workflow';
import { RepositoriesService } from '../repositories/registry/repositories.service';
import { chunkPointFile } from '../repositories/chunks/chunk-points';
import { insideRoot } from '../repositories/qcow2/inside-root';
import { layoutOf, maxChainDepthOf } from '../repositories/registry/repository.events';
import { BreakChainCommand } from '../restore-points/commands/break-chain.command';
import { ChainState, depthOf, integrityOf, lineageOf, pointOf } from '../restore-points/chain.aggregate';
import { pointRecorded } from './recorded-point';
import { RestorePoint } from '../restore-points/chain.events';
import { ImmutablePoints } from '../restore-points/immutable-points';
import { RestorePointsService } from '../restore-points/restore-points.service';
import { SpaceCheck } from '../restore-points/space-check';
import { AgentCalls } from '../agents/agent-calls';
import { JobUploads } from './adapters/job-uploads';
import { TargetFiles, targetPath } from './adapters/target-files';
import { BackupJobState, isTerminal } from './backup-job.aggregate';
import { BackupJobReader } from './backup-job.reader';
import { BACKUP_CANCEL_REQUESTED, BACKUP_REQUESTED, backupStream, Target } from './backup.events';
import { AgentFinishedJob, BackupJobQueued, JobCancelNotice } from './backup.notices';
import { BackupJobResult } from './commands/backup-job-result';
import { CompleteBackupCommand } from './commands/complete-backup.command';
import { DecideBackupTypeCommand } from './commands/decide-backup-type.command';
import { FailBackupCommand } from './commands/fail-backup.command';
import { RecordTargetsPreparedCommand } from './commands/record-targets-prepared.command';
import { RecordTargetsReleasedCommand } from './commands/record-targets-released.command';
import { ReleaseVmClaimCommand } from './commands/release-vm-claim.command';
import { RequestSnapshotCommand } from './commands/request-snapshot.command';
import { StartBackupCommand } from './commands/start-backup.command';
import { JobsInProcess } from './jobs-in-process';
import { UnfinishedBackupJobsQuery } from './queries/unfinished-backup-jobs.query';
import { KnownBaseQuery } from './queries/known-base.query';

/** An agent reconnecting (after a hub or network restart) gets this long before its job fails. */
const AGENT_CONNECT_GRACE_MS = 15_000;
/** A delete or merge of the chain runs to its end or is undone; a backup waits this long for it before giving up. */
const CHAIN_BUSY_WAIT_MS = 10 * 60_000;
const CHAIN_BUSY_POLL_MS = 200;
/**
 * A cancelled agent ends its job on its own time (it removes its snapshot, ends its backup on the hypervisor, then
 * reports): a failed job is recorded only after that report, or after this long if it never comes.
 */
const AGENT_END_WAIT_MS = 30_000;

interface Waiter {
  agentId: string;
  resolve: () => void;
  reject: (error: Error) => void;
}

interface Story extends JobStory {
  jobId: string;
}

/**
 * The backup process manager: queues requested jobs, runs each one step by step (every step a
 * command whose events are the job's record), finishes or cleans up, and at start recovers what a
 * previous hub process left unfinished. A restore point enters its chain only after every disk arrived;
 * a failed job reads "failed" only after nothing of it is left behind.
 *
 * Jobs run on the hub that holds the agent's session, whichever hub recorded the request: every hub
 * follows BackupRequested and BackupCancelRequested in the event store, the session holder takes the
 * job (BackupStarted names it; of two hubs that try, the first append wins), and a cancel recorded on
 * any hub reaches the hub running the job the same way.
 */
@Injectable()
export class BackupWorkflow implements OnApplicationBootstrap, OnModuleDestroy {
  private readonly logger = new Logger('backups');
  private readonly queue: string[] = [];
  private readonly active = new Map<string, Promise<void>>();
  private readonly waiters = new Map<string, Waiter>();
  /** Jobs whose agent reported its end (finished or failed), and the cleanups waiting for such a report. */
  private readonly agentEnded = new Set<string>();
  private readonly agentEndWaits = new Map<string, () => void>();
  private readonly subscriptions: Subscription[] = [];
  /** Jobs of agents whose session this hub does not hold, waiting for the session holder to take them. */
  private readonly offered = new Map<string, NodeJS.Timeout>();
  /** Jobs whose cancel this hub already acted on (the in-process notice and the event store both bring it). */
  private readonly cancels = new Set<string>();
  private readonly abort = new AbortController();
  /**
   * Jobs preparing their targets here, each with what stops that work: a synthetic full's copy of a large disk runs
   * for minutes, and neither a cancel nor the hub's shutdown is to wait for it (nor leave its qemu-img running).
   */
  private readonly preparing = new Map<string, AbortController>();
  private following: Promise<void> | null = null;
  private stopping = false;
  private readonly owners: OwnersGone;
  private readonly stories: JobStories<BackupJobState>;
  private orphanSweep?: { stop(): Promise<void> };

  constructor(
    @Inject(HUB_CONFIG) private readonly config: HubConfig,
    @Inject(EVENT_STORE) private readonly store: EventStore,
    @Inject(HUB_INSTANCE) private readonly instance: string,
    private readonly commands: CommandBus,
    private readonly queries: QueryBus,
    private readonly notices: EventBus,
    private readonly jobs: BackupJobReader,
    private readonly here: JobsInProcess,
    private readonly agents: AgentsService,
    private readonly tunnel: AgentTunnel,
    private readonly calls: AgentCalls,
    private readonly files: TargetFiles,
    private readonly uploads: JobUploads,
    private readonly repositories: RepositoriesService,
    private readonly points: RestorePointsService,
    private readonly immutable: ImmutablePoints,
    private readonly exports: NbdExportsService,
    private readonly space: SpaceCheck,
    private readonly projections: ProjectionsService,
    private readonly chunkSpace: ChunkSpaceWorkflow,
    liveness: HubLiveness,
  ) {
    this.owners = new OwnersGone(liveness, config.goneHubAfterMs);
    this.stories = new JobStories(store, commands, backupStream, 'backup job');
  }

  async onApplicationBootstrap(): Promise<void> {
    this.subscriptions.push(
      this.notices.pipe(ofType(BackupJobQueued)).subscribe(({ jobId }) => void this.offer(jobId)),
      this.notices.pipe(ofType(JobCancelNotice)).subscribe((notice) => void this.cancelled(notice)),
      this.notices.pipe(ofType(AgentFinishedJob)).subscribe(({ jobId, failure }) => {
        if (this.here.has(jobId)) this.agentEnded.add(jobId);
        this.agentEndWaits.get(jobId)?.();
        const waiter = this.waiters.get(jobId);
        if (failure === null) waiter?.resolve();
        else waiter?.reject(new Error(failure));
      }),
    );
    this.tunnel.events.on('connected', (agentId: string) => void this.offerQueued(agentId));
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
    await this.recoverAll();
  }

  async onModuleDestroy(): Promise<void> {
    this.stopping = true;
    this.abort.abort();
    await this.orphanSweep?.stop();
    for (const s of this.subscriptions) s.unsubscribe();
    for (const timer of this.offered.values()) clearTimeout(timer);
    await this.following;
    for (const waiter of this.waiters.values()) waiter.reject(new Error('the hub is shutting down'));
    await Promise.allSettled([...this.active.values()]);
  }

  /**
   * Jobs a previous run of this hub process left unfinished are finished or failed and cleaned up; queued
   * ones are offered. Jobs another hub started are that hub's. Then every new request and cancel is followed.
   */
  private async recoverAll(): Promise<void> {
    await this.projections.waitForCaughtUp('backup-jobs');
    const from = (await this.projections.list()).find((p) => p.name === 'backup-jobs')?.position ?? null;
    for (const { jobId } of await this.queries.execute(new UnfinishedBackupJobsQuery())) {
      const state = await this.job(jobId);
      if (isTerminal(state)) continue;
      if (state.phase === 'queued') await this.offer(jobId);
      else if (state.startedBy === null || state.startedBy === this.instance) await this.inStory(await this.story(jobId), (story) => this.recover(story, state));
    }
    await this.stopExportsOfEndedJobs();
    this.pump();
    this.following = this.follow(from);
    if (!this.stopping) this.orphanSweep = repeatAfter(this.config.goneHubCheckMs, () => this.takeOverOrphans());
  }

  /**
   * Jobs whose hub process is gone for good (its host lost, and its data dir with it: a process that starts again
   * recovers its own jobs) are taken over here, as that process would at its restart: cleaned up and failed, or
   * completed when their point was recorded, and their VM released. Until then a cancel sent to any hub recorded
   * the request and ended nothing, and the VM's claim refused every later backup of it.
   */
  private async takeOverOrphans(): Promise<void> {
    const orphans: BackupJobState[] = [];
    for (const { jobId, phase } of await this.queries.execute(new UnfinishedBackupJobsQuery())) {
      if (this.stopping) return;
      // a queued job left to a hub that held its agent's session, once that session is recorded ended: offered
      // again, so that a hub takes it (and fails it for want of its agent, or a cancel sent to it ends it)
      if (phase === 'queued') {
        await this.reoffer(jobId);
        continue;
      }
      const state = await this.job(jobId);
      if (!isTerminal(state) && state.startedBy !== null && state.startedBy !== this.instance) orphans.push(state);
    }
    const gone = await this.owners.sweep(orphans.map((s) => s.startedBy!));
    for (const state of orphans) {
      if (!gone.has(state.startedBy!) || this.stopping) continue;
      this.logger.warn(`backup ${state.jobId} was started by hub process ${state.startedBy}, which is gone: taking it over`);
      const failure = leftByGoneProcess(state.phase, state.startedBy!);
      await this.inStory(await this.story(state.jobId!), async (story) => {
        await this.step(story, () => this.exports.abandon(state.targets.map((t) => t.leaseId), state.startedBy!, failure));
        await this.recover(story, state, failure);
      }).catch((e) =>
        this.logger.error(`taking over backup ${state.jobId} failed: ${String(e)}`),
      );
    }
  }

  /**
   * Exports this process adopted at its start for a job another hub ended while it was away (taken over as the
   * work of a gone process): nothing else would stop them. A stopped chunk export writes its point's index, so a
   * failed job's target file is removed again after the stop.
   */
  private async stopExportsOfEndedJobs(): Promise<void> {
    // the exports are adopted at start-up beside this hook: only once that is done does the list hold them
    await this.exports.whenReconciled();
    for (const { leaseId, jobId } of await this.exports.running()) {
      const state = await this.job(jobId).catch(() => null);
      if (!state?.jobId || !isTerminal(state) || state.startedBy !== this.instance) continue;
      this.logger.warn(`backup ${jobId} was ended by another hub while this one was away; stopping its export ${leaseId}`);
      await this.exports.stop(leaseId, 'its backup job was ended while this hub process was away').catch((e) => this.logger.warn(`stopping export ${leaseId}: ${String(e)}`));
      const target = state.targets.find((t) => t.leaseId === leaseId);
      if (state.phase !== 'failed' || !target || !state.restorePointId) continue;
      const { root } = await this.repositories.definition(state.repositoryId!);
      await this.files.remove(root, state.vmId!, state.restorePointId, [target.file]).catch((e) => this.logger.error(`removing ${target.file} of ${jobId}: ${String(e)}`));
    }
  }

  /** Requests and cancels recorded by any hub on this database, from the event store (not only this process's notices). */
  private async follow(after: string | null): Promise<void> {
    const filter = { eventTypes: [BACKUP_REQUESTED, BACKUP_CANCEL_REQUESTED] };
    while (!this.abort.signal.aborted) {
      try {
        for await (const event of this.store.subscribeToAll({ after, filter, signal: this.abort.signal })) {
          after = event.position;
          const { jobId } = event.data as { jobId: string };
          if (event.type === BACKUP_REQUESTED) void this.offer(jobId);
          else void this.cancelled(new JobCancelNotice(jobId, event.id));
        }
      } catch (error) {
        this.logger.warn(`following backup requests failed, retrying: ${String(error)}`);
        await abortableSleep(1_000, this.abort.signal);
      }
    }
  }

  /**
   * A queued job runs here when this hub holds its agent's session. Otherwise the hub that does takes it;
   * when none does within the grace, this hub takes it after all, and it fails for want of its agent.
   */
  private async offer(jobId: string): Promise<void> {
    if (this.stopping || this.here.has(jobId) || this.offered.has(jobId)) return;
    const state = await this.jobs.find(jobId).catch(() => null);
    if (!state || state.phase !== 'queued') return;
    if (this.tunnel.isConnected(state.agentId!)) return this.enqueue(jobId, state.vmId!, true);
    this.offered.set(
      jobId,
      setTimeout(() => {
        this.offered.delete(jobId);
        void this.unclaimed(jobId, state.agentId!, state.vmId!).catch((e) => this.logger.error(`backup ${jobId} could not be offered: ${String(e)}`));
      }, AGENT_CONNECT_GRACE_MS),
    );
  }

  private async unclaimed(jobId: string, agentId: string, vmId: string): Promise<void> {
    if (this.stopping || (await this.job(jobId)).phase !== 'queued') return;
    const agent = await this.agents.state(agentId).catch(() => null);
    if (!this.tunnel.isConnected(agentId) && agent?.connected && agent.connectedVia !== this.instance) return;
    this.enqueue(jobId, vmId, true);
  }

  private async reoffer(jobId: string): Promise<void> {
    if (this.here.has(jobId) || this.offered.has(jobId)) return;
    const state = await this.jobs.find(jobId).catch(() => null);
    const agent = state?.agentId ? await this.agents.state(state.agentId).catch(() => null) : null;
    if (agent && !agent.connected) await this.offer(jobId);
  }

  /** An agent opened its session here: its queued jobs are this hub's to run. */
  private async offerQueued(agentId: string): Promise<void> {
    for (const { jobId, phase } of await this.queries.execute(new UnfinishedBackupJobsQuery())) {
      if (phase !== 'queued') continue;
      clearTimeout(this.offered.get(jobId));
      this.offered.delete(jobId);
      const state = await this.jobs.find(jobId);
      if (state?.agentId === agentId) await this.offer(jobId);
    }
  }

  private enqueue(jobId: string, vmId: string, pump: boolean): void {
    if (this.here.has(jobId)) return;
    this.here.add(jobId, vmId);
    this.queue.push(jobId);
    if (pump) this.pump();
  }

  private pump(): void {
    while (!this.stopping && this.active.size < this.config.maxConcurrentBackups && this.queue.length) {
      const jobId = this.queue.shift()!;
      const run = this.story(jobId)
        .then((story) => this.inStory(story, (s) => this.run(s)))
        .catch((e) => this.logger.error(`backup ${jobId} could not run: ${String(e)}`))
        .finally(() => {
          this.active.delete(jobId);
          this.agentEnded.delete(jobId);
          this.here.delete(jobId);
          this.cancels.delete(jobId);
          this.pump();
        });
      this.active.set(jobId, run);
    }
  }

  private async run(story: Story): Promise<void> {
    const { jobId } = story;
    const started = await this.step(story, () => this.commands.execute(new StartBackupCommand(jobId, this.instance)));
    // Another hub appended its start first: the job is that hub's.
    if (!started.eventIds.length) return;
    story.cause = started.eventIds.at(-1)!;
    let state = started.state;
    const { agentId, vmId, repositoryId } = state as { agentId: string; vmId: string; repositoryId: string };
    const repository = await this.repositories.usable(repositoryId);
    const root = repository.root;
    const createdFiles: string[] = [];
    // each export's wait until it serves: the agent is started meanwhile
    const serving: Promise<unknown>[] = [];
    let agentStarted = false;
    const watching = new AbortController();
    try {
      // A cancel recorded while the job waited for a hub to take it ends it here.
      await this.throwIfCancelled(jobId);
      if (!(await this.tunnel.waitConnected(agentId, AGENT_CONNECT_GRACE_MS))) throw new Error(`agent ${agentId} is not connected`);
      // BackupStarted is recorded, so from here a delete of this chain sees the job and is refused; one already under way is waited for.
      const chain = await this.idleChain(vmId, repositoryId);
      const last = chain.points.at(-1);
      const corrupt = last ? corruption(chain, last.restorePointId) : null;
      const since = state.requestedType !== 'full' && last && !corrupt ? last.restorePointId : null;
      const sinceDisks = since ? last!.disks.map((d) => ({ diskId: d.diskId, virtualSize: d.virtualSize, changeRef: d.changeRef })) : undefined;
      const plan = await this.calls.plan(agentId, { vmId, sincePointId: since, ...(sinceDisks ? { sinceDisks } : {}) });
      const restorePointId = `rp-${new Date().toISOString().replace(/[-:T]/g, '').slice(0, 14)}-${randomUUID().slice(0, 8)}`;
      const lastPoint = last
        ? { restorePointId: last.restorePointId, disks: last.disks.map((d) => ({ diskId: d.diskId, virtualSize: d.virtualSize })), corrupt, depth: depthOf(chain, last.restorePointId) }
        : null;
      state = await this.send(story, new DecideBackupTypeCommand(jobId, restorePointId, lastPoint, plan, maxChainDepthOf(repository)));
      if (corrupt) await this.step(story, () => this.commands.execute(new BreakChainCommand(vmId, repositoryId, last!.restorePointId, corrupt)));
      // The agent's change tracking cannot continue from the last point (a bitmap or checkpoint lost, the VM's
      // power state changed): the chain ends there, on the record, and this backup starts a new one. A raw disk
      // has no change tracking to lose: the agent does not call its VM's fulls broken chains.
      else if (since && plan.mode === 'full' && plan.chainBroken) {
        const reason = `change tracking cannot continue from ${since}: ${plan.reason ?? 'no reason given by the agent'}`;
        await this.step(story, () => this.commands.execute(new BreakChainCommand(vmId, repositoryId, since, reason)));
      }
      await this.refuseIfChainBusy(vmId, repositoryId);
      await this.space.assertFits(repositoryId, plan.disks.map((d) => d.virtualSize));

      // The exports' keys stay in memory and in the hub's run dir: the events name the targets, never their keys.
      const keys = new Map<string, NbdPsk>();
      // Every disk's target at once (a file and a qemu-nbd each, ~50-100 ms a disk one after the other); all settle
      // before a failure is thrown, so the clean-up knows every file that was created. Each export is only spawned
      // here: the agent takes its snapshot while the exports start (chunk-nbd, a node process, takes 100-200 ms), and
      // its connections wait for their ports.
      const preparation = new AbortController();
      this.preparing.set(jobId, preparation);
      const stop = AbortSignal.any([preparation.signal, this.abort.signal]);
      // a cancel recorded while the job planned (before it could be told of it here) stops the preparation too
      if ((await this.job(jobId)).cancelRequested) preparation.abort();
      const prepared = await Promise.allSettled(
        plan.disks.map(async (disk): Promise<Target> => {
          const parentFile = state.type === 'incremental' ? last!.disks.find((d) => d.diskId === disk.diskId)!.file : null;
          if (layoutOf(repository) === 'chunks') {
            // the point's index is written by its export when it stops (src/repositories/chunks/chunk-nbd): listed
            // before the start, so a job that fails after a stop that committed it removes it
            const file = chunkPointFile(vmId, disk.diskId, restorePointId);
            createdFiles.push(file);
            // a full starts from the newest point its agent already sent of a disk this size, and the agent sends what differs
            const knownFrom = parentFile ? null : ((await this.queries.execute(new KnownBaseQuery(repositoryId, agentId, vmId, disk.diskId, disk.virtualSize)))?.file ?? null);
            const base = parentFile ?? knownFrom;
            const create = { size: disk.virtualSize, base: base ? join(root, base) : null };
            const exported = await this.step(story, () => this.exports.begin({ jobId, diskId: disk.diskId, file: insideRoot(root, file), format: 'chunks', readOnly: false, create, bitmap: null, tls: true }));
            serving.push(exported.serving);
            keys.set(disk.diskId, exported.psk!);
            return { diskId: disk.diskId, file, parentFile, virtualSize: disk.virtualSize, leaseId: exported.leaseId, port: exported.port, exportName: exported.exportName, ...(knownFrom ? { knownFrom } : {}) };
          }
          const file = targetPath(vmId, disk.diskId, restorePointId);
          // a synthetic full copies the point's whole view here, before the snapshot: the VM is not held while it runs
          const synthesizedFrom = state.synthesizedFrom ? pointOf(chain, state.synthesizedFrom)!.disks.find((d) => d.diskId === disk.diskId)!.file : undefined;
          // a create that fails removes its own file; one that succeeds is removed with the job's other files
          await this.files.create(root, { diskId: disk.diskId, file, parentFile, virtualSize: disk.virtualSize, ...(synthesizedFrom ? { synthesizedFrom } : {}) }, stop).catch((error: unknown) => {
            if (!stop.aborted) throw error;
            throw new Error(this.abort.signal.aborted ? 'the hub is shutting down' : 'cancelled');
          });
          createdFiles.push(file);
          const exported = await this.step(story, () => this.exports.begin({ jobId, diskId: disk.diskId, file: join(root, file), format: 'qcow2', readOnly: false, bitmap: null, tls: true }));
          serving.push(exported.serving);
          keys.set(disk.diskId, exported.psk!);
          return { diskId: disk.diskId, file, parentFile, virtualSize: disk.virtualSize, leaseId: exported.leaseId, port: exported.port, exportName: exported.exportName };
        }),
      );
      this.preparing.delete(jobId);
      const refused = prepared.find((p) => p.status === 'rejected');
      if (refused) throw refused.reason;
      const targets = prepared.map((p) => (p as PromiseFulfilledResult<Target>).value);
      await this.send(story, new RecordTargetsPreparedCommand(jobId, targets));
      await this.throwIfCancelled(jobId);
      state = await this.send(story, new RequestSnapshotCommand(jobId));
      const finished = this.waitForAgent(jobId, agentId);
      await this.calls.start(agentId, {
        jobId,
        correlationId: story.correlationId,
        causationId: story.cause,
        vmId,
        // a synthetic full is read from the VM as an incremental: only the changes since the point it copied
        type: state.synthesizedFrom ? 'incremental' : state.type!,
        restorePointId,
        sincePointId: state.sincePointId,
        ...(state.sincePointId && sinceDisks ? { sinceDisks } : {}),
        disks: targets.map((t) => ({ diskId: t.diskId, nbd: { port: t.port, exportName: t.exportName, psk: keys.get(t.diskId)! }, ...(t.knownFrom ? { known: true } : {}) })),
      });
      agentStarted = true;
      void watchAgentJob({
        running: () => this.calls.backupRunning(agentId, jobId),
        lost: () => this.waiters.get(jobId)?.reject(new Error(`agent ${agentId} no longer runs the job, and its last report never reached the hub`)),
        signal: AbortSignal.any([watching.signal, this.abort.signal]),
      });
      // an export that does not come to serve fails the job, and the agent is stopped
      await Promise.all(serving);
      await this.throwIfCancelled(jobId);
      await finished;
      await this.finish(story, root);
    } catch (error) {
      const reason = error instanceof Error ? error.message : String(error);
      this.logger.error(`backup ${jobId} failed: ${reason}`);
      await this.catchUp(story);
      const state = await this.job(jobId);
      // Clean first, then record the failure: a job that reads "failed" has left nothing behind. An export still
      // starting ends first (its own failure releases its port), so the clean-up finds each export started or gone.
      await Promise.allSettled(serving);
      // an error after its point was recorded (the completion's append, or its answer, lost to a database failover):
      // the point is the backup, and its files are never cleaned away, whatever the job reads now
      if (state.restorePointId !== null && pointRecorded(state, await this.points.chain(state.vmId!, state.repositoryId!))) {
        if (!isTerminal(state)) await this.completeRecorded(story, state);
      } else {
        await this.cleanUp(story, root, createdFiles, agentStarted);
        if (!isTerminal(await this.job(jobId))) await this.send(story, new FailBackupCommand(jobId, reason, state.phase!));
      }
    } finally {
      watching.abort();
      this.waiters.delete(jobId);
    }
    await this.release(story, vmId);
  }

  /** The job ended: the VM may take its next job. A release that cannot be recorded now is taken over by the next request (it sees the job ended). */
  private async release(story: Story, vmId: string): Promise<void> {
    const { phase } = await this.job(story.jobId);
    const result = await this.step(story, () => this.commands.execute(new ReleaseVmClaimCommand(vmId, story.jobId, `backup job ${phase}`))).catch((e) => {
      this.logger.warn(`releasing VM ${vmId} from ${story.jobId}: ${String(e)}`);
      return null;
    });
    if (result?.eventIds.length) story.cause = result.eventIds.at(-1)!;
  }

  /** The chain with no delete or merge pending: one under way finishes or is undone, and the backup continues after it. */
  private async idleChain(vmId: string, repositoryId: string): Promise<ChainState> {
    const deadline = Date.now() + CHAIN_BUSY_WAIT_MS;
    for (;;) {
      const chain = await this.points.chain(vmId, repositoryId);
      if (!chain.pending) return chain;
      if (Date.now() > deadline || this.stopping) throw new Error(`the chain is still busy deleting restore point ${chain.pending.restorePointId}`);
      await new Promise((r) => setTimeout(r, CHAIN_BUSY_POLL_MS));
    }
  }

  /**
   * A delete that passed its in-use check just before this job was recorded as started may have begun since
   * the wait above: it then sees this job when it checks again and undoes itself, but this job does not build
   * on a chain that may be changing. It fails now, before any data is moved, instead of at the end.
   */
  private async refuseIfChainBusy(vmId: string, repositoryId: string): Promise<void> {
    const { pending } = await this.points.chain(vmId, repositoryId);
    if (pending) throw new Error(`the chain started deleting restore point ${pending.restorePointId} while the backup was being prepared`);
  }

  /** Every disk arrived: stop the exports (flushing them), then record the restore point, then complete. */
  private async finish(story: Story, root: string): Promise<void> {
    await this.catchUp(story);
    const state = await this.job(story.jobId);
    await this.releaseExports(story, state);
    await this.send(story, new RecordTargetsReleasedCommand(story.jobId, []));
    // a chunk point exists once its export committed its index on stop; one that could not is no point
    for (const t of state.targets) if (!(await this.files.exists(root, t.file))) throw new Error(`the data of disk ${t.diskId} was not stored: its export ended without writing ${t.file}`);
    const chain = state.synthesizedFrom ? await this.points.chain(state.vmId!, state.repositoryId!) : null;
    const digests = (diskId: string) =>
      chain
        ? this.files.synthesizedDigests(root, state.vmId!, state.restorePointId!, diskId, lineageOf(chain, state.synthesizedFrom!).map((p) => p.disks.find((d) => d.diskId === diskId)?.digests))
        : this.files.digests(root, state.vmId!, state.restorePointId!, diskId);
    const point: RestorePoint = {
      restorePointId: state.restorePointId!,
      vmId: state.vmId!,
      repositoryId: state.repositoryId!,
      backupId: story.jobId,
      type: state.type!,
      parentId: state.type === 'incremental' ? state.sincePointId : null,
      createdAt: new Date().toISOString(),
      ...(state.consistency ?? {}),
      disks: await Promise.all(
        state.targets.map(async (t) => ({
          diskId: t.diskId,
          file: t.file,
          parentFile: t.parentFile,
          virtualSize: t.virtualSize,
          fileBytes: await this.files.bytes(root, t.file),
          changeRef: state.disks[t.diskId]?.changeRef ?? null,
          digests: await digests(t.diskId),
        })),
      ),
      configuration: await this.files.configuration(root, state.vmId!, state.restorePointId!),
      ...(state.disksLeftOut.length ? { disksLeftOut: state.disksLeftOut } : {}),
    };
    await this.files.writeManifest(root, point);
    // A delete of a point this job does not read through (an older segment) may be under way: it ends soon, then the point is added.
    await this.idleChain(point.vmId, point.repositoryId);
    await this.step(story, () => this.points.add(point));
    // recorded first: a point whose sealing fails is still a restore point, and the next start seals it
    await this.immutable.seal(point).catch((e) => this.logger.error(`restore point ${point.restorePointId} could not be made immutable: ${String(e)}`));
    await this.send(story, new CompleteBackupCommand(story.jobId));
    this.chunkSpace.schedule(point.repositoryId, false);
  }

  private async cleanUp(story: Story, root: string, createdFiles: string[], agentStarted: boolean): Promise<void> {
    const state = await this.job(story.jobId);
    if (agentStarted && this.tunnel.isConnected(state.agentId!)) await this.cancelAgent(state.agentId!, story.jobId);
    await this.releaseExports(story, state);
    await this.uploads.close(story.jobId);
    const files = [...new Set([...createdFiles, ...state.targets.map((t) => t.file)])];
    const removed = await this.files.remove(root, state.vmId!, state.restorePointId ?? 'none', files).catch((e) => {
      this.logger.error(`could not remove the partial files of ${story.jobId}: ${String(e)}`);
      return [];
    });
    await this.send(story, new RecordTargetsReleasedCommand(story.jobId, removed));
    // what a failed backup stored into a chunk store no point names: collected soon
    this.chunkSpace.schedule(state.repositoryId!, true);
  }

  /**
   * Tells the agent to stop and waits for its last report: what it leaves on the hypervisor (a snapshot, a backup
   * job, a frozen guest) is gone before the job reads failed. An agent that already reported its end is not waited for.
   */
  private async cancelAgent(agentId: string, jobId: string): Promise<void> {
    const wait = new AbortController();
    const ended = new Promise<void>((resolve) => this.agentEndWaits.set(jobId, resolve));
    const gone = (id: string) => id === agentId && wait.abort();
    this.tunnel.events.on('disconnected', gone);
    try {
      const running = await this.calls.cancel(agentId, jobId).catch(() => false);
      if (!running || this.agentEnded.has(jobId)) return;
      const stopped = AbortSignal.any([wait.signal, this.abort.signal]);
      await Promise.race([ended, abortableSleep(AGENT_END_WAIT_MS, stopped).catch(() => undefined)]);
    } finally {
      wait.abort();
      this.tunnel.events.off('disconnected', gone);
      this.agentEndWaits.delete(jobId);
    }
  }

  private async releaseExports(story: Story, state: BackupJobState): Promise<void> {
    // at once: each stop waits for its qemu-nbd to flush its image and exit
    const leases = await this.exports.leasesOfJob(state.jobId!);
    const [running, idle] = [leases.filter((l) => this.exports.isRunning(l.leaseId)), leases.filter((l) => !this.exports.isRunning(l.leaseId))];
    await Promise.all(running.map((lease) => this.step(story, () => this.exports.stop(lease.leaseId, 'backup job ended')).catch((e) => this.logger.warn(`stopping export ${lease.leaseId}: ${String(e)}`))));
    // a port leased by a hub killed before it asked for the export's start has no export to stop: released as the job's
    if (idle.length) await this.step(story, () => this.exports.releaseJob(state.jobId!)).catch((e) => this.logger.warn(`releasing the ports of ${state.jobId}: ${String(e)}`));
  }

  /** A job whose restore point is in the chain: its exports released, then completed. */
  private async completeRecorded(story: Story, state: BackupJobState): Promise<void> {
    await this.releaseExports(story, state);
    await this.send(story, new RecordTargetsReleasedCommand(story.jobId, []));
    await this.send(story, new CompleteBackupCommand(story.jobId));
  }

  /** At start, or taking over from a gone hub: a job whose restore point made it into the chain is completed; any other is failed and cleaned up. */
  private async recover(story: Story, state: BackupJobState, failure = `interrupted by a hub restart during ${state.phase}`): Promise<void> {
    const { jobId } = story;
    const definition = await this.repositories.definition(state.repositoryId!);
    const root = definition.root;
    if (pointRecorded(state, await this.points.chain(state.vmId!, state.repositoryId!))) {
      await this.completeRecorded(story, state);
      await this.release(story, state.vmId!);
      return;
    }
    this.logger.warn(`backup ${jobId}: ${failure}; cleaning up and failing it`);
    const files = state.restorePointId ? state.targets.map((t) => t.file).concat(await this.plannedFiles(state, layoutOf(definition) === 'chunks' ? chunkPointFile : targetPath)) : [];
    await this.cleanUp(story, root, files, this.tunnel.isConnected(state.agentId!));
    await this.send(story, new FailBackupCommand(jobId, failure, state.phase!));
    await this.release(story, state.vmId!);
  }

  /** Target files (and chunk points, which their exports commit when stopped) may exist before BackupTargetsPrepared was recorded; they are named after the restore point. */
  private async plannedFiles(state: BackupJobState, pathOf: (vmId: string, diskId: string, restorePointId: string) => string): Promise<string[]> {
    const vm = await this.agents.vm(state.vmId!).catch(() => null);
    return vm ? vm.disks.map((d) => pathOf(state.vmId!, d.diskId, state.restorePointId!)) : [];
  }

  /** A cancel of a job waiting for its agent stops the agent; of a queued job, ends it; otherwise the next step sees it. */
  private async cancelled({ jobId, eventId }: JobCancelNotice): Promise<void> {
    if (this.cancels.has(jobId)) return;
    const waiter = this.waiters.get(jobId);
    if (waiter || this.queue.includes(jobId)) this.cancels.add(jobId);
    if (waiter) {
      await this.calls.cancel(waiter.agentId, jobId).catch((e) => this.logger.warn(`telling agent to cancel ${jobId} failed: ${String(e)}`));
      waiter.reject(new Error('cancelled'));
      return;
    }
    // a job preparing its targets stops that work (a synthetic full's copy) and fails with the reason at once
    this.preparing.get(jobId)?.abort();
    if (!this.queue.includes(jobId)) return;
    this.queue.splice(this.queue.indexOf(jobId), 1);
    this.here.delete(jobId);
    const story = await this.story(jobId);
    if (eventId) story.cause = eventId;
    await this.inStory(story, async (s) => {
      const state = await this.send(s, new FailBackupCommand(jobId, 'cancelled'));
      await this.release(s, state.vmId!);
    }).catch((e) => this.logger.error(`failing the cancelled job ${jobId}: ${String(e)}`));
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

  private job(jobId: string): Promise<BackupJobState> {
    return this.jobs.get(jobId);
  }

  private async story(jobId: string): Promise<Story> {
    return { jobId, ...(await this.stories.open(jobId)) };
  }

  private catchUp(story: Story): Promise<void> {
    return this.stories.catchUp(story.jobId, story);
  }

  private inStory<T>(story: Story, work: (story: Story) => Promise<T>): Promise<T> {
    return this.stories.within(story, () => work(story));
  }

  private step<T>(story: Story, work: () => Promise<T>): Promise<T> {
    return this.stories.step(story, work);
  }

  private send(story: Story, command: Command<BackupJobResult>): Promise<BackupJobState> {
    return this.stories.send(story, command);
  }
}

/** Why a point must not be built on: a verify found it (or a block it reads through) damaged. */
function corruption(chain: ChainState, restorePointId: string): string | null {
  const integrity = integrityOf(chain, restorePointId);
  if (integrity.status !== 'corrupt') return null;
  const inPoints = [...new Set(integrity.damaged.map((d) => d.inPointId))];
  const what = [
    integrity.damaged.length ? `${integrity.damaged.length} damaged block(s) in ${inPoints.join(', ')}` : null,
    ...integrity.problems,
  ].filter(Boolean);
  return `restore point ${restorePointId} is corrupt (${what.join('; ')}); a full backup starts a new chain`;
}
