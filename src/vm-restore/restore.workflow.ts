import { Inject, Injectable, Logger, OnApplicationBootstrap, OnModuleDestroy } from '@nestjs/common';
import { CommandBus, EventBus, ofType, QueryBus } from '@nestjs/cqrs';
import { randomUUID } from 'node:crypto';
import { Subscription } from 'rxjs';
import { isChunkPointFile } from '../repositories/chunks/chunk-points';
import { AgentCalls } from '../agents/agent-calls';
import { AgentsService } from '../agents/agents.service';
import { AgentTunnel } from '../agents/agent-tunnel.service';
import { HUB_CONFIG, HubConfig } from '../config/hub-config';
import { HUB_INSTANCE } from '../config/hub-instance';
import { EVENT_STORE, EventStore } from '../event-store/event-store.port';
import { Command } from '../eventing/command';
import { DomainError } from '../eventing/domain-error';
import { JobStories, Story as JobStory } from '../eventing/job-story';
import { NbdExportsService } from '../nbd/exports/nbd-exports.service';
import type { NbdPsk } from '../nbd-protocol/tls-psk';
import { CommandGateway } from '../projection-runner/command-gateway';
import { HubLiveness, leftByGoneProcess, OwnersGone } from '../projection-runner/hub-liveness';
import { ProjectionsService } from '../projection-runner/projections.service';
import { repeatAfter } from '../process/repeat';
import { BreakChainCommand } from '../restore-points/commands/break-chain.command';
import { ListRestorePointsQuery } from '../restore-points/queries/list-restore-points.query';
import { RestorePointsService } from '../restore-points/restore-points.service';
import type { DamagedBlock, MinimalDefinition, RestoreCheckRequest, RestoreStartRequest, RestoreTarget } from '../wire/restore-protocol';
import { PointView } from './adapters/point-view';
import { CompleteRestoreCommand } from './commands/complete-restore.command';
import { FailRestoreCommand } from './commands/fail-restore.command';
import { RecordRestoreCancelledCommand } from './commands/record-restore-cancelled.command';
import { RequestRestoreCommand } from './commands/request-restore.command';
import { RestoreResult } from './commands/restore-result';
import { StartRestoreCommand } from './commands/start-restore.command';
import { ListRestoresQuery } from './queries/list-restores.query';
import { isTerminal, RestoreState } from './restore.aggregate';
import { RestoreExport, restoreStream } from './restore.events';
import { AgentFinishedRestore, AgentOutcome, RestoreCancelNotice, RestoreQueued } from './restore.notices';
import { DrillScreenshots } from './adapters/drill-screenshots';
import { RecordDrillResultCommand } from './commands/record-drill-result.command';
import { RestoreReader } from './restore.reader';

/** An agent reconnecting (after a hub or network restart) gets this long before the restore fails. */
const AGENT_CONNECT_GRACE_MS = 15_000;
/** A cancelled agent gets this long to undo what it made and say so. */
const CANCEL_WAIT_MS = 60_000;
/** A delete of the point's chain that began just before the exports held its files gets this long to end. */
const DELETE_WAIT_MS = 10 * 60_000;
const DELETE_POLL_MS = 200;
const READ_MODEL = 'restores';

export interface RestoreRequest {
  restorePointId: string;
  agentId: string;
  mode: 'full' | 'instant';
  target: RestoreTarget;
  definition: MinimalDefinition | null;
  force: boolean;
  /** Named beforehand by a caller that records it first (a drill slot); else a new one. */
  restoreId?: string;
}

interface Story extends JobStory {
  restoreId: string;
}

type Outcome = AgentOutcome;

class RestoreFailure extends Error {
  constructor(
    message: string,
    readonly damaged: DamagedBlock[],
  ) {
    super(message);
  }
}

/**
 * The restore process manager. A request is checked (the point, its integrity, the agent, the target on the
 * agent's host) before it is recorded; the hub holding the agent's session then exports the point's disks
 * read-only over TLS, hands the agent the exports and the recorded configuration, waits for its last word,
 * stops the exports and records the end. A failed or cancelled restore reads so only once the agent undid
 * what it made; the exports pin the point and its chain (deletes and prunes are refused) until then.
 */
@Injectable()
export class RestoreWorkflow implements OnApplicationBootstrap, OnModuleDestroy {
  private readonly logger = new Logger('restores');
  private readonly active = new Map<string, Promise<void>>();
  private readonly waiters = new Map<string, { agentId: string; resolve: (o: Outcome) => void; reject: (e: Error) => void }>();
  private readonly subscriptions: Subscription[] = [];
  private stopping = false;
  private readonly owners: OwnersGone;
  private readonly stories: JobStories<RestoreState>;
  private orphanSweep?: { stop(): Promise<void> };

  constructor(
    @Inject(HUB_CONFIG) private readonly config: HubConfig,
    @Inject(EVENT_STORE) store: EventStore,
    @Inject(HUB_INSTANCE) private readonly instance: string,
    private readonly commands: CommandBus,
    private readonly gateway: CommandGateway,
    private readonly queries: QueryBus,
    private readonly notices: EventBus,
    private readonly reader: RestoreReader,
    private readonly agents: AgentsService,
    private readonly tunnel: AgentTunnel,
    private readonly calls: AgentCalls,
    private readonly exports: NbdExportsService,
    private readonly points: RestorePointsService,
    private readonly view: PointView,
    private readonly screenshots: DrillScreenshots,
    private readonly projections: ProjectionsService,
    liveness: HubLiveness,
  ) {
    this.owners = new OwnersGone(liveness, config.goneHubAfterMs);
    this.stories = new JobStories(store, commands, restoreStream, 'restore');
  }

  async onApplicationBootstrap(): Promise<void> {
    this.subscriptions.push(
      this.notices.pipe(ofType(RestoreQueued)).subscribe(({ restoreId }) => this.launch(restoreId)),
      this.notices.pipe(ofType(RestoreCancelNotice)).subscribe((n) => void this.cancelled(n)),
      this.notices.pipe(ofType(AgentFinishedRestore)).subscribe(({ restoreId, outcome }) => this.waiters.get(restoreId)?.resolve(outcome)),
    );
    // A running instant recovery outlives its agent's session (the copy runs in libvirt, the agent reconnects
    // and reports) and cannot fail for a dead export (the guest's I/O waits): only what has not started is failed.
    this.tunnel.events.on('disconnected', (agentId: string, reason: string) => {
      for (const [restoreId, w] of this.waiters) {
        if (w.agentId !== agentId) continue;
        void this.reader.get(restoreId).then((s) => {
          if (s.phase !== 'pulling') w.reject(new Error(`agent disconnected: ${reason}`));
        });
      }
    });
    this.exports.onUnexpectedExit((leaseId, detail) => {
      for (const [restoreId, w] of this.waiters) {
        void this.reader.get(restoreId).then((s) => {
          if (!s.exports.some((e) => e.leaseId === leaseId)) return;
          if (s.phase === 'pulling') this.logger.error(`restore ${restoreId}: the export a running domain reads from died (${detail}); its guest's I/O waits until it is back`);
          else w.reject(new Error(`the hub's export of a disk died: ${detail}`));
        });
      }
    });
    await this.recoverAll();
    await this.stopExportsOfEndedRestores();
    if (!this.stopping) this.orphanSweep = repeatAfter(this.config.goneHubCheckMs, () => this.takeOverOrphans());
  }

  async onModuleDestroy(): Promise<void> {
    this.stopping = true;
    await this.orphanSweep?.stop();
    for (const s of this.subscriptions) s.unsubscribe();
    for (const w of this.waiters.values()) w.reject(new Error('the hub is shutting down'));
    await Promise.allSettled([...this.active.values()]);
  }

  /** Checks everything a restore needs before it is recorded: a request that cannot run is refused, not recorded as failed. */
  async request(req: RestoreRequest): Promise<{ restoreId: string }> {
    if (req.mode === 'instant' && req.target.kind === 'replace') throw new DomainError('invalid', 'instant recovery makes a new domain: replace needs mode full');
    const point = await this.points.view(req.restorePointId);
    // a recycled point's files are all there until its purge, which waits for the restore to end
    if (point.status === 'deleting') throw new DomainError('conflict', `restore point ${req.restorePointId} is being deleted`);
    if (point.integrity === 'corrupt' && !req.force) {
      const where = point.damaged.map((d) => `${d.diskId} at ${d.offset} (in ${d.inPointId})`).join(', ');
      throw new DomainError('conflict', `restore point ${req.restorePointId} is corrupt (${where || (point.verifyProblems ?? []).join('; ')}); restore it anyway with force: true`);
    }
    await this.agents.state(req.agentId);
    // an agent reconnecting after a hub or network restart gets the grace a backup's agent gets
    if (!(await this.tunnel.waitConnected(req.agentId, AGENT_CONNECT_GRACE_MS))) throw new DomainError('conflict', `agent ${req.agentId} has no session with this hub: request the restore on the hub it is connected to`);
    if (req.target.kind === 'replace' && req.target.vmId !== point.vmId) throw new DomainError('conflict', `restore point ${req.restorePointId} is of VM ${point.vmId}: it replaces that VM's disks, not ${req.target.vmId}'s`);
    if (req.target.kind !== 'replace' && !point.configuration && !req.definition) throw new DomainError('conflict', `restore point ${req.restorePointId} holds no VM configuration: give definition {memoryMiB, vcpus}`);
    if (point.configuration && req.definition) throw new DomainError('conflict', `restore point ${req.restorePointId} holds the VM's configuration: the domain is defined from it, not from a definition`);
    const found = await this.view.point(point.vmId, point.repositoryId, point.restorePointId);
    if (!found) throw new DomainError('not_found', `restore point ${req.restorePointId} does not exist`);
    if (found.deleting) throw new DomainError('conflict', `restore point ${req.restorePointId} reads through restore point ${found.deleting}, which is being deleted`);
    const restoreId = req.restoreId ?? randomUUID();
    const check: RestoreCheckRequest = {
      restoreId,
      correlationId: 'check',
      restorePointId: point.restorePointId,
      vmId: point.vmId,
      mode: req.mode,
      target: req.target,
      configuration: await this.view.configuration(found.root, found.point),
      definition: req.definition,
      disks: await this.view.sizedDisks(found.root, found.point),
    };
    await this.calls.checkRestore(req.agentId, check);
    const knownDamage = req.force ? point.damaged.map(({ diskId, offset, length, inPointId }) => ({ diskId, offset, length, inPointId })) : [];
    await this.gateway.execute(new RequestRestoreCommand(restoreId, point.restorePointId, point.vmId, point.repositoryId, req.agentId, req.mode, req.target, req.definition, req.force, knownDamage), READ_MODEL);
    return { restoreId };
  }

  private launch(restoreId: string): void {
    if (this.stopping || this.active.has(restoreId)) return;
    const run = this.story(restoreId)
      .then((story) => this.inStory(story, (s) => this.run(s)))
      .catch((e) => this.logger.error(`restore ${restoreId} could not run: ${String(e)}`))
      .finally(() => this.active.delete(restoreId));
    this.active.set(restoreId, run);
  }

  /** A running instant recovery this hub was restarted under: its agent's last word still ends it. */
  private launchWatch(restoreId: string): void {
    const watch = this.story(restoreId)
      .then((story) =>
        this.inStory(story, async (s) => {
          const state = await this.reader.get(restoreId);
          const outcome = await this.waitForAgent(restoreId, state.agentId!, false);
          await this.end(s, state, outcome, Date.parse(state.requestedAt ?? new Date().toISOString()));
        }),
      )
      .catch(async (e) => {
        if (this.stopping) return;
        this.logger.error(`instant recovery ${restoreId}: ${String(e)}`);
        const story = await this.story(restoreId);
        await this.inStory(story, async (s) => {
          await this.releaseExports(s);
          if (!isTerminal(await this.reader.get(restoreId))) await this.send(s, new FailRestoreCommand(restoreId, e instanceof Error ? e.message : String(e)));
        });
      })
      .catch((e) => this.logger.error(`ending instant recovery ${restoreId} failed: ${String(e)}`))
      .finally(() => this.active.delete(restoreId));
    this.active.set(restoreId, watch);
  }

  /** The agent's last word, acted on: a drill's verdict, or the restore completed (its exports stopped first). */
  private async end(story: Story, state: RestoreState, outcome: Outcome, started: number): Promise<void> {
    const { restoreId } = story;
    if ('failure' in outcome) throw new RestoreFailure(outcome.failure, outcome.damaged);
    // the end follows the agent's last recorded report, not the start that asked for it
    await this.catchUp(story);
    await this.releaseExports(story);
    if ('drill' in outcome) {
      const { passed, bootMs, reason, screenshot } = outcome.drill;
      const point = await this.view.point(state.vmId!, state.repositoryId!, state.restorePointId!);
      const shot = screenshot ? await this.screenshots.save(restoreId, screenshot).catch((e) => (this.logger.warn(`keeping the screenshot of drill ${restoreId} failed: ${String(e)}`), null)) : null;
      await this.send(story, new RecordDrillResultCommand(restoreId, passed, bootMs, reason, point?.point.consistency ?? null, shot));
      return;
    }
    if (state.target!.kind === 'replace') await this.breakChains(story, state, outcome.domain.name);
    await this.send(story, new CompleteRestoreCommand(restoreId, outcome.domain, Date.now() - started));
  }

  private async run(story: Story): Promise<void> {
    const { restoreId } = story;
    let state = await this.reader.get(restoreId);
    if (state.phase !== 'requested') return;
    const started = Date.now();
    const agentId = state.agentId!;
    let agentStarted = false;
    try {
      if (!(await this.tunnel.waitConnected(agentId, AGENT_CONNECT_GRACE_MS))) throw new Error(`agent ${agentId} is not connected`);
      await this.throwIfCancelled(restoreId);
      const found = await this.view.point(state.vmId!, state.repositoryId!, state.restorePointId!);
      if (!found || found.deleting) throw new Error(`restore point ${state.restorePointId} was deleted while the restore was starting`);
      const exported: RestoreExport[] = [];
      const keys = new Map<string, NbdPsk>();
      for (const disk of this.view.files(found.root, found.point)) {
        const e = await this.step(story, () => this.exports.start({ jobId: restoreId, diskId: disk.diskId, file: disk.absolute, format: isChunkPointFile(disk.file) ? 'chunks' : 'qcow2', readOnly: true, bitmap: null, tls: true }));
        keys.set(disk.diskId, e.psk!);
        // a domain booted from it must keep reading through a clean hub restart
        if (state.mode === 'instant' && state.target!.kind === 'new-domain') this.exports.keepAtShutdown(e.leaseId);
        exported.push({ diskId: disk.diskId, virtualSize: disk.virtualSize, file: disk.file, leaseId: e.leaseId, port: e.port, exportName: e.exportName });
      }
      // The exports hold the point's files now, so no delete starts any more; one that started before them ends first.
      const settled = await this.view.settled(found, { timeoutMs: DELETE_WAIT_MS, pollMs: DELETE_POLL_MS, stop: () => this.stopping });
      if (!settled.ok) throw new Error(settled.reason);
      state = await this.send(story, new StartRestoreCommand(restoreId, this.instance, exported));
      const configuration = await this.view.configuration(found.root, found.point);
      const digests = await Promise.all(found.point.disks.map(async (d) => [d.diskId, found.lineage.every((p) => p.disks.find((x) => x.diskId === d.diskId)?.digests)] as const));
      const request: RestoreStartRequest = {
        restoreId,
        correlationId: story.correlationId,
        // the RestoreStarted just recorded: the agent names it as the cause of every report
        causationId: story.cause,
        restorePointId: state.restorePointId!,
        vmId: state.vmId!,
        mode: state.mode!,
        target: state.target!,
        configuration,
        definition: state.definition,
        disks: exported.map((e) => ({ diskId: e.diskId, virtualSize: e.virtualSize, digests: digests.find(([id]) => id === e.diskId)![1], nbd: { port: e.port, exportName: e.exportName, psk: keys.get(e.diskId)! } })),
      };
      const finished = this.waitForAgent(restoreId, agentId);
      await this.throwIfCancelled(restoreId);
      await this.calls.startRestore(agentId, request);
      agentStarted = true;
      await this.end(story, state, await finished, started);
    } catch (error) {
      const reason = error instanceof Error ? error.message : String(error);
      // a hub stopping leaves a running instant recovery alone: the domain reads on, the next start takes it up
      if (this.stopping && (await this.reader.get(restoreId)).phase === 'pulling') return;
      this.logger.error(`restore ${restoreId} failed: ${reason}`);
      await this.catchUp(story);
      if (agentStarted && !(error instanceof RestoreFailure)) await this.stopAgent(restoreId, agentId);
      await this.releaseExports(story);
      const now = await this.reader.get(restoreId);
      if (!isTerminal(now)) {
        if (now.cancelRequested) await this.send(story, new RecordRestoreCancelledCommand(restoreId));
        // a drill that could not even boot the point failed as a drill: that is what its report must show
        else if (now.target?.kind === 'drill') await this.send(story, new RecordDrillResultCommand(restoreId, false, null, reason, null, null));
        else await this.send(story, new FailRestoreCommand(restoreId, reason, error instanceof RestoreFailure ? error.damaged : []));
      }
    } finally {
      this.waiters.delete(restoreId);
    }
  }

  /**
   * The domain's disks now hold the point, not what its checkpoints describe: every chain of the VM ends here on
   * the record, naming the restore, and the next backup (whose agent finds no checkpoint) is a full.
   */
  private async breakChains(story: Story, state: RestoreState, domain: string): Promise<void> {
    const points = await this.queries.execute(new ListRestorePointsQuery(state.vmId!));
    const lastByRepository = new Map<string, string>();
    for (const p of points) lastByRepository.set(p.repositoryId, p.restorePointId);
    for (const [repositoryId, last] of lastByRepository) {
      const reason = `restore ${story.restoreId} replaced the disks of domain ${domain} with restore point ${state.restorePointId}`;
      const result = await this.step(story, () => this.commands.execute(new BreakChainCommand(state.vmId!, repositoryId, last, reason)));
      if (result.eventIds.length) story.cause = result.eventIds.at(-1)!;
    }
  }

  /** Tells the agent to stop and waits (bounded) for its last word: it undoes what it made before it says it failed. */
  private async stopAgent(restoreId: string, agentId: string): Promise<void> {
    if (!this.tunnel.isConnected(agentId)) return;
    const said = new Promise<void>((resolve) => {
      const timer = setTimeout(resolve, CANCEL_WAIT_MS);
      this.waiters.set(restoreId, { agentId, resolve: () => (clearTimeout(timer), resolve()), reject: () => (clearTimeout(timer), resolve()) });
    });
    const cancelled = await this.calls.cancelRestore(agentId, restoreId).then(
      () => true,
      (e) => (this.logger.warn(`telling agent ${agentId} to cancel restore ${restoreId} failed: ${String(e)}`), false),
    );
    if (cancelled) await said;
  }

  private async releaseExports(story: Story): Promise<void> {
    const leases = await this.exports.leasesOfJob(story.restoreId);
    for (const lease of leases.filter((l) => this.exports.isRunning(l.leaseId))) {
      await this.step(story, () => this.exports.stop(lease.leaseId, 'restore ended')).catch((e) => this.logger.warn(`stopping export ${lease.leaseId}: ${String(e)}`));
    }
    // ports whose export no process here runs (a gone hub's): released as the restore's
    if (leases.some((l) => !this.exports.isRunning(l.leaseId))) await this.step(story, () => this.exports.releaseJob(story.restoreId)).catch((e) => this.logger.warn(`releasing the ports of ${story.restoreId}: ${String(e)}`));
  }

  /**
   * Restores whose hub process is gone for good are ended here, as that process would end them at its restart: the
   * agent told to undo its part when it is connected here, the ports released, the restore failed with the reason.
   * Not an instant recovery whose domain runs (`pulling`): that process keeps its exports through its own stop and
   * resumes it when it starts again, and undoing it here would destroy a VM that may be serving its users.
   */
  private async takeOverOrphans(): Promise<void> {
    const orphans: RestoreState[] = [];
    for (const r of await this.queries.execute(new ListRestoresQuery({ unfinished: true, limit: 1000 }))) {
      const state = await this.reader.get(r.restoreId);
      if (!isTerminal(state) && state.phase !== 'pulling' && state.startedBy !== null && state.startedBy !== this.instance) orphans.push(state);
    }
    const gone = await this.owners.sweep(orphans.map((s) => s.startedBy!));
    for (const state of orphans) {
      if (!gone.has(state.startedBy!) || this.stopping) continue;
      const restoreId = state.restoreId!;
      const failure = leftByGoneProcess(state.phase, state.startedBy!);
      this.logger.warn(`restore ${restoreId}: ${failure}; ending it`);
      await this.story(restoreId)
        .then((story) =>
          this.inStory(story, async (s) => {
            await this.stopAgent(restoreId, state.agentId!);
            await this.step(s, () => this.exports.abandon(state.exports.map((e) => e.leaseId), state.startedBy!, failure));
            await this.releaseExports(s);
            if (!isTerminal(await this.reader.get(restoreId))) await this.send(s, new FailRestoreCommand(restoreId, failure));
          }),
        )
        .catch((e) => this.logger.error(`taking over restore ${restoreId} failed: ${String(e)}`));
    }
  }

  private async cancelled({ restoreId }: RestoreCancelNotice): Promise<void> {
    const waiter = this.waiters.get(restoreId);
    if (waiter) waiter.reject(new Error('cancelled'));
  }

  /** Exports this process adopted at its start for a restore another hub ended while it was away: nothing else would stop them. */
  private async stopExportsOfEndedRestores(): Promise<void> {
    await this.exports.whenReconciled();
    for (const { leaseId, jobId } of await this.exports.running()) {
      const state = await this.reader.get(jobId).catch(() => null);
      if (!state?.restoreId || !isTerminal(state) || state.startedBy !== this.instance) continue;
      this.logger.warn(`restore ${jobId} was ended by another hub while this one was away; stopping its export ${leaseId}`);
      await this.exports.stop(leaseId, 'its restore was ended while this hub process was away').catch((e) => this.logger.warn(`stopping export ${leaseId}: ${String(e)}`));
    }
  }

  /** At start: restores this hub process (or no hub) was running when it stopped are ended; the agent undoes its part. */
  private async recoverAll(): Promise<void> {
    await this.projections.waitForCaughtUp(READ_MODEL);
    for (const r of await this.queries.execute(new ListRestoresQuery({ unfinished: true, limit: 1000 }))) {
      const state = await this.reader.get(r.restoreId);
      if (isTerminal(state) || (state.startedBy !== null && state.startedBy !== this.instance)) continue;
      if (state.phase === 'pulling') {
        for (const lease of await this.exports.leasesOfJob(r.restoreId)) this.exports.keepAtShutdown(lease.leaseId);
        this.launchWatch(r.restoreId);
        continue;
      }
      await this.story(r.restoreId)
        .then((story) =>
          this.inStory(story, async (s) => {
            this.logger.warn(`restore ${r.restoreId} was interrupted by a hub restart in phase ${state.phase}; ending it`);
            await this.stopAgent(r.restoreId, state.agentId!);
            await this.releaseExports(s);
            if (!isTerminal(await this.reader.get(r.restoreId))) await this.send(s, new FailRestoreCommand(r.restoreId, `interrupted by a hub restart during ${state.phase}`));
          }),
        )
        .catch((e) => this.logger.error(`ending restore ${r.restoreId} after a restart failed: ${String(e)}`));
    }
  }

  private waitForAgent(restoreId: string, agentId: string, connected = true): Promise<Outcome> {
    const done = new Promise<Outcome>((resolve, reject) => {
      this.waiters.set(restoreId, { agentId, resolve, reject });
      if (connected && !this.tunnel.isConnected(agentId)) reject(new Error('agent is not connected'));
    });
    done.catch(() => undefined);
    return done;
  }

  private async throwIfCancelled(restoreId: string): Promise<void> {
    if ((await this.reader.get(restoreId)).cancelRequested) throw new Error('cancelled');
  }

  private async story(restoreId: string): Promise<Story> {
    return { restoreId, ...(await this.stories.open(restoreId)) };
  }

  private catchUp(story: Story): Promise<void> {
    return this.stories.catchUp(story.restoreId, story);
  }

  private inStory<T>(story: Story, work: (story: Story) => Promise<T>): Promise<T> {
    return this.stories.within(story, () => work(story));
  }

  private step<T>(story: Story, work: () => Promise<T>): Promise<T> {
    return this.stories.step(story, work);
  }

  private send(story: Story, command: Command<RestoreResult>): Promise<RestoreState> {
    return this.stories.send(story, command);
  }
}
