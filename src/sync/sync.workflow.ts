import { Inject, Injectable, Logger, OnApplicationBootstrap, OnModuleDestroy } from '@nestjs/common';
import { QueryBus } from '@nestjs/cqrs';
import { createHash, randomUUID } from 'node:crypto';
import { mkdir, stat } from 'node:fs/promises';
import { dirname, join } from 'node:path';
import { TargetFiles, targetPath } from '../backups/adapters/target-files';
import { HUB_CONFIG, HubConfig } from '../config/hub-config';
import { HUB_INSTANCE } from '../config/hub-instance';
import { copyDisk, CopyProgress } from '../data-mover';
import { DomainError } from '../eventing/domain-error';
import { KeyedMutex } from '../process/keyed-mutex';
import { causedBy, currentContext, runWithContext, SYSTEM_ACTOR } from '../eventing/request-context';
import { BASE_ALLOCATION, openNbd, pskStartTls, QEMU_ALLOCATION_DEPTH } from '../nbd-protocol';
import { nextSlot, parseCron } from '../policies/calendar';
import { AdoptedProcessHandle, processesWithArgument, repeatAfter, terminateProcess } from '../process';
import { CommandGateway } from '../projection-runner/command-gateway';
import { DB_CONNECTION, ProjectionsService } from '../projection-runner/projections.service';
import type { DbConnection } from '../database/db-connection';
import { HubLiveness, leftByGoneProcess, OwnersGone } from '../projection-runner/hub-liveness';
import { configurationFileOf } from '../repositories/qcow2/configuration-files';
import { digestFileOf, readDigestFile } from '../repositories/qcow2/digest-files';
import { writeFileAtomic } from '../repositories/qcow2/durable-fs';
import { insideRoot } from '../repositories/qcow2/inside-root';
import { ChunkSpaceWorkflow } from '../repositories/chunk-space.workflow';
import { RepositoriesService } from '../repositories/registry/repositories.service';
import { layoutOf } from '../repositories/registry/repository.events';
import { checkBlocks, exportChunkPointForWriting, exportForWriting, exportPoint, hashWholeDisk, openPoint, pointExportAreaOf } from '../restore-points/adapters/block-reader';
import { chunkPointFile, isChunkPointFile } from '../repositories/chunks/chunk-points';
import { chunkPointDigests } from '../repositories/chunks/point-server';
import { pointOf } from '../restore-points/chain.aggregate';
import { PointDisk, PointSource, RestorePoint } from '../restore-points/chain.events';
import { keptLeftOut } from '../wire/backup-protocol';
import { BlockDigests, DIGEST_BLOCK_SIZE, zeroDigest } from '../wire/block-digests';
import { ChainStates } from '../restore-points/chain-states';
import { SyncRestorePointCommand } from '../restore-points/commands/sync-restore-point.command';
import { ImmutablePoints } from '../restore-points/immutable-points';
import { GetRestorePointQuery } from '../restore-points/queries/get-restore-point.query';
import { recordUnlessHeld } from '../restore-points/point-id-turn';
import { SyncedInRunQuery } from '../restore-points/queries/synced-in-run.query';
import { RestorePointDeletionWorkflow } from '../restore-points/restore-point-deletion.workflow';
import { chainPruneMarks, deletionOrder } from '../policies/retention/prune';
import type { RetentionRules } from '../policies/policy.events';
import { RemoteConnection } from './adapters/remote-connection';
import { SyncJobCommand } from './jobs/commands/sync-job.command';
import { SyncJobDefinition } from './jobs/sync-job.events';
import { GetSyncJobQuery, ListSyncJobsQuery, SyncJobRecord } from './queries/sync-jobs.query';
import { GetRemoteQuery } from './queries/remotes.query';
import { RemoteTokens } from './remotes/remote-tokens';
import { chainProblem, pointProblem, RemotePoint, shownId } from './remote-points';
import { isSafeIdentifier } from '../wire/identifiers';
import { syncJobAggregate, SyncJobState } from './jobs/sync-job.aggregate';
import { syncJobStream } from './jobs/sync-job.events';
import { AggregateRepository } from '../eventing/aggregate-repository';
import { namesImage } from '../qemu/image-keys';

const SYNC_JOBS = 'sync-jobs';
/** As a backup's disks report theirs: often enough to watch, rarely enough to cost nothing. */
const PROGRESS_EVERY_MS = 1000;
const RESTORE_POINTS = 'restore-points';

type UnfinishedPoint = NonNullable<SyncJobState['unfinished']>;

/** A point a rescan recorded elsewhere on this hub while the run copied it: this copy is not needed. */
class HeldMeanwhile extends Error {}

/** Why a run stopped at a point, with the point named. */
class PointFailure extends Error {
  constructor(
    readonly restorePointId: string,
    message: string,
  ) {
    super(message);
  }
}

/**
 * A run of a sync job: every restore point of the remote's repository this hub does not hold, oldest first, each
 * copied as the same chain (a full as a full, an incremental as an overlay on the synced parent holding only the
 * clusters the remote's own file of that point holds), each block hashed as it arrives and compared with the
 * digests the remote recorded when it backed the point up. Only a point that matches is recorded
 * (RestorePointSynced); one that does not is removed and the run fails naming the block. A run cut short (a
 * crash of either hub) leaves its point unrecorded: the next run removes what it wrote and starts that point over.
 */
@Injectable()
export class SyncWorkflow implements OnApplicationBootstrap, OnModuleDestroy {
  private readonly logger = new Logger('sync');
  private readonly running = new Map<string, { abort: AbortController; done: Promise<void> }>();
  private readonly timers = new Map<string, NodeJS.Timeout>();
  private readonly repositoryTurns = new KeyedMutex();
  private stopping = false;
  private readonly owners: OwnersGone;
  private orphanSweep?: { stop(): Promise<void> };

  constructor(
    @Inject(HUB_CONFIG) private readonly config: HubConfig,
    @Inject(HUB_INSTANCE) private readonly instance: string,
    private readonly gateway: CommandGateway,
    private readonly queries: QueryBus,
    private readonly aggregates: AggregateRepository,
    private readonly repositories: RepositoriesService,
    private readonly chains: ChainStates,
    private readonly files: TargetFiles,
    private readonly immutable: ImmutablePoints,
    private readonly projections: ProjectionsService,
    private readonly deletion: RestorePointDeletionWorkflow,
    private readonly chunkSpace: ChunkSpaceWorkflow,
    liveness: HubLiveness,
    private readonly tokens: RemoteTokens,
    @Inject(DB_CONNECTION) private readonly connection: DbConnection,
  ) {
    this.owners = new OwnersGone(liveness, config.goneHubAfterMs);
  }

  /** Where its exports run: the verifies' work area, cleared before any run resumes (RestorePointVerificationWorkflow). */
  private get exportArea(): string {
    return pointExportAreaOf(this.config.dataDir);
  }

  /**
   * Runs this hub's previous process left running ended with it, and so did the runs of a hub process on the same
   * database that is gone for good (its host lost: a process that starts again ends its own): each is ended here as
   * its process would end it at its restart. Otherwise a job whose run names a process that never comes back stays
   * `running`, and every later run of it, scheduled or asked for, is refused as already running.
   */
  async onApplicationBootstrap(): Promise<void> {
    await this.projections.waitForCaughtUp(SYNC_JOBS);
    const jobs: SyncJobRecord[] = await this.queries.execute(new ListSyncJobsQuery());
    for (const job of jobs) {
      const state = (await this.aggregates.load(syncJobStream(job.syncJobId), syncJobAggregate)).state;
      const left = state.running?.hubInstance === this.instance ? state.running.runId : null;
      if (left) await runWithContext({ correlationId: randomUUID(), actor: SYSTEM_ACTOR }, () => this.endLeftRun(job, left, 'the hub stopped during the run'));
      this.schedule(job);
    }
    if (!this.stopping) this.orphanSweep = repeatAfter(this.config.goneHubCheckMs, () => this.takeOverOrphans());
  }

  private async takeOverOrphans(): Promise<void> {
    const orphans: { job: SyncJobRecord; state: SyncJobState; owner: string }[] = [];
    for (const job of (await this.queries.execute(new ListSyncJobsQuery())) as SyncJobRecord[]) {
      if (this.stopping) return;
      // the read model narrows the look to jobs with a run under way; the stream says whose it is
      if (job.lastRun?.status !== 'running') continue;
      const state = (await this.aggregates.load(syncJobStream(job.syncJobId), syncJobAggregate)).state;
      const owner = state.running?.hubInstance;
      if (owner && owner !== this.instance) orphans.push({ job, state, owner });
    }
    const gone = await this.owners.sweep(orphans.map((o) => o.owner));
    for (const { job, state, owner } of orphans) {
      if (!gone.has(owner) || this.stopping) continue;
      const { runId, point } = state.running!;
      const reason = leftByGoneProcess(point ? `the copy of ${point.restorePointId}` : 'the run', owner);
      await runWithContext({ correlationId: randomUUID(), actor: SYSTEM_ACTOR }, async () => {
        // claimed first, so that of the hubs taking it over one ends it, and one that dies doing so is taken over in turn
        const claim = await this.gateway.execute(new SyncJobCommand(job.syncJobId, { kind: 'adoptRun', runId, from: owner, hubInstance: this.instance }), SYNC_JOBS).catch((e: unknown) => (e instanceof DomainError && e.kind === 'conflict' ? null : Promise.reject(e)));
        if (!claim) return;
        this.logger.warn(`sync ${job.syncJobId}: run ${runId} was ${reason}; ending it`);
        await causedBy(claim.eventIds[0], () => this.endLeftRun(job, runId, reason), currentContext().correlationId);
      }).catch((e) => this.logger.error(`taking over sync ${job.syncJobId} failed: ${String(e)}`));
    }
  }

  /**
   * Ends a run of this hub process left by its previous process, or claimed from one that is gone: the unfinished
   * point's files removed first, while the job still shows the run and no hub may start another that writes the same
   * point (a job without a schedule might never run again, and its committed indexes would keep their chunks from
   * every collection); the remote's export is closed by the next run (one whose opening request went unanswered, the
   * remote closed itself: docs/api.md). The points it recorded stay synced, and its figures say so. In the caller's story.
   */
  private async endLeftRun(job: SyncJobRecord, runId: string, reason: string): Promise<void> {
    const state = (await this.aggregates.load(syncJobStream(job.syncJobId), syncJobAggregate)).state;
    if (state.running?.runId !== runId || state.running.hubInstance !== this.instance) return;
    await this.clearLeftFiles(job, state.unfinished);
    await this.projections.waitForCaughtUp(RESTORE_POINTS);
    const synced: { restorePointId: string; bytesReceived: number }[] = await this.queries.execute(new SyncedInRunQuery(runId));
    await this.gateway.execute(
      new SyncJobCommand(job.syncJobId, {
        kind: 'failRun',
        result: { runId, reason, restorePointId: state.running!.point?.restorePointId ?? null, synced: synced.map((p) => p.restorePointId), bytesReceived: synced.reduce((n, p) => n + p.bytesReceived, 0) },
      }),
      SYNC_JOBS,
    );
  }

  private async clearLeftFiles(job: SyncJobRecord, unfinished: UnfinishedPoint | null): Promise<void> {
    if (!unfinished) return;
    await this.repositories
      .usable(job.repositoryId)
      .then((repository) => this.clearUnfinishedFiles(repository.root, job.repositoryId, unfinished))
      .catch((error: unknown) => this.logger.warn(`sync ${job.syncJobId}: what its run cut short left of ${unfinished.restorePointId} stays for its next run: ${error instanceof Error ? error.message : String(error)}`));
  }

  async onModuleDestroy(): Promise<void> {
    this.stopping = true;
    await this.orphanSweep?.stop();
    for (const timer of this.timers.values()) clearTimeout(timer);
    for (const run of this.running.values()) run.abort.abort(new Error('the hub is shutting down'));
    await Promise.allSettled([...this.running.values()].map((r) => r.done));
  }

  /** Arms the job's next scheduled run; a slot missed while the hub was down is not caught up (the next slot syncs everything anyway). */
  schedule(job: Pick<SyncJobDefinition, 'syncJobId' | 'schedule' | 'timeZone'>): void {
    if (!job.schedule || this.stopping) return;
    const next = nextSlot(parseCron(job.schedule), job.timeZone ?? 'UTC', new Date());
    if (!next) return;
    clearTimeout(this.timers.get(job.syncJobId));
    // setTimeout holds 2^31-1 ms at most: a slot further away is re-armed on the way
    const delay = Math.min(next.getTime() - Date.now(), 2 ** 31 - 1);
    const timer = setTimeout(() => {
      this.timers.delete(job.syncJobId);
      if (Date.now() >= next.getTime()) {
        void runWithContext({ correlationId: randomUUID(), actor: SYSTEM_ACTOR }, () => this.start(job.syncJobId, 'schedule')).catch((e: Error) => this.logger.warn(`scheduled sync ${job.syncJobId} did not start: ${e.message}`));
      }
      this.schedule(job);
    }, Math.max(delay, 0));
    timer.unref();
    this.timers.set(job.syncJobId, timer);
  }

  async create(input: { remoteId: string; repositoryId: string; remoteRepositoryId?: string; vms?: string[]; schedule?: string; timeZone?: string; maxBytesPerSecond?: number; retention?: RetentionRules }): Promise<SyncJobRecord> {
    await this.queries.execute(new GetRemoteQuery(input.remoteId));
    await this.repositories.usable(input.repositoryId);
    const definition: SyncJobDefinition = {
      syncJobId: randomUUID(),
      remoteId: input.remoteId,
      repositoryId: input.repositoryId,
      remoteRepositoryId: input.remoteRepositoryId ?? null,
      vms: input.vms ?? null,
      schedule: input.schedule ?? null,
      timeZone: input.timeZone ?? null,
      maxBytesPerSecond: input.maxBytesPerSecond ?? null,
      // a validated DTO is a class instance: the event keeps its plain fields
      retention: input.retention ? { ...input.retention } : null,
    };
    await this.gateway.execute(new SyncJobCommand(definition.syncJobId, { kind: 'create', definition }), SYNC_JOBS);
    this.schedule(definition);
    return this.queries.execute(new GetSyncJobQuery(definition.syncJobId));
  }

  /** Records the run's start (409 when one is under way) and runs it in the background. */
  async start(syncJobId: string, trigger: 'manual' | 'schedule'): Promise<{ syncJobId: string; runId: string }> {
    if (this.stopping) throw new DomainError('conflict', 'the hub is shutting down');
    const state = await this.aggregates.load(syncJobStream(syncJobId), syncJobAggregate);
    const definition = state.state.definition;
    if (!definition) throw new DomainError('not_found', `sync job ${syncJobId} does not exist`);
    const runId = randomUUID();
    const { eventIds } = await this.gateway.execute(new SyncJobCommand(syncJobId, { kind: 'startRun', runId, trigger, hubInstance: this.instance }), SYNC_JOBS);
    const abort = new AbortController();
    // What the run records reacts to its start, in the story of the request (or slot) that started it. Runs into
    // one repository take turns: two jobs pulling the same point would write the same files.
    const done = causedBy(eventIds[0], () => this.repositoryTurns.run(definition.repositoryId, () => this.run(definition, runId, state.state.unfinished, abort.signal)), currentContext().correlationId).finally(() => this.running.delete(syncJobId));
    this.running.set(syncJobId, { abort, done });
    return { syncJobId, runId };
  }

  private async run(job: SyncJobDefinition, runId: string, unfinished: UnfinishedPoint | null, signal: AbortSignal): Promise<void> {
    const started = Date.now();
    const synced: string[] = [];
    const refused: { restorePointId: string; vmId: string; reason: string }[] = [];
    let bytesReceived = 0;
    let current: string | null = null;
    let remote: RemoteConnection | undefined;
    let chunks = false;
    try {
      const repository = await this.repositories.usable(job.repositoryId);
      const root = repository.root;
      chunks = layoutOf(repository) === 'chunks';
      const record = await this.queries.execute(new GetRemoteQuery(job.remoteId));
      remote = await RemoteConnection.open({ host: record.host, port: record.port, fingerprint: record.fingerprint }, await this.tokens.token(job.remoteId));
      if (unfinished) await this.clearUnfinished(root, job, unfinished, remote);
      const list = await remote.points(job.remoteRepositoryId);
      if (!list || typeof list !== 'object' || !Array.isArray(list.points)) throw new Error('the remote hub answered its restore points without a list of points');
      if (list.repositoryId !== null && !isSafeIdentifier(list.repositoryId)) throw new Error(`the remote hub names its repository ${shownId(list.repositoryId)}, not an identifier`);
      const wanted = list.points.filter((p) => !job.vms || job.vms.includes(p?.vmId));
      const listed = new Map(wanted.filter((p) => isSafeIdentifier(p?.restorePointId)).map((p) => [p.restorePointId, p]));
      const refusedIds = new Set<string>();
      // a point refused is named on the job's stream with its reason, and the run goes on with the next one
      const refuse = async (point: unknown, reason: string) => {
        const p = (point && typeof point === 'object' ? point : {}) as Partial<RemotePoint>;
        const refusal = { restorePointId: shownId(p.restorePointId), vmId: shownId(p.vmId), reason };
        if (isSafeIdentifier(p.restorePointId)) refusedIds.add(p.restorePointId);
        refused.push(refusal);
        this.logger.warn(`sync ${job.syncJobId} run ${runId}: restore point ${refusal.restorePointId} of VM ${refusal.vmId} refused: ${reason}`);
        await this.gateway.execute(new SyncJobCommand(job.syncJobId, { kind: 'refusePoint', refusal: { runId, ...refusal } }), SYNC_JOBS);
      };
      const now = new Date();
      const seen = new Set<string>();
      const vmsHere = new Set<string>();
      let alreadyHeld = 0;
      let older = 0;
      for (const point of wanted) {
        signal.throwIfAborted();
        const problem = pointProblem(point, now) ?? (seen.has(point.restorePointId) ? 'the remote hub lists it twice' : null);
        if (problem) {
          await refuse(point, problem);
          continue;
        }
        seen.add(point.restorePointId);
        vmsHere.add(point.vmId);
        const chain = await this.chains.load(point.vmId, job.repositoryId);
        // a hub holds a restore point once, whatever repository it is in: its id names it everywhere (API, audit, restores)
        if (pointOf(chain, point.restorePointId) || (await this.heldHere(point.restorePointId))) {
          alreadyHeld++;
          continue;
        }
        // As PBS's pull does: what is older than the newest point here was pruned or deleted here, or skipped; it stays away.
        const newest = chain.points.reduce<string | null>((m, p) => (m === null || p.createdAt > m ? p.createdAt : m), null);
        if (newest !== null && point.createdAt <= newest) {
          older++;
          continue;
        }
        const misfit = chainProblem(point, { heldHere: (id) => !!pointOf(chain, id), listed, refused: refusedIds });
        if (misfit) {
          await refuse(point, misfit);
          continue;
        }
        current = point.restorePointId;
        if (point.integrity === 'corrupt') throw new PointFailure(point.restorePointId, `restore point ${point.restorePointId} is corrupt on the remote hub: it is not copied`);
        const missing = point.disks.filter((d) => !d.digests).map((d) => d.diskId);
        if (missing.length) throw new PointFailure(point.restorePointId, `restore point ${point.restorePointId} has no digests for ${missing.join(', ')}: what arrives could not be checked`);
        // an incremental continues the chain here only from its own parent, the newest point here; otherwise it is copied whole, as a full
        const parent = point.parentId && chain.points.at(-1)?.restorePointId === point.parentId ? chain.points.at(-1)! : null;
        // into a chunk store a point copied whole starts from the VM's newest point here, and only what differs crosses
        const start = chunks ? (parent ?? chain.points.at(-1) ?? null) : null;
        const copied = await this.copyPoint(root, job, runId, list.repositoryId, point, parent, remote, signal, chunks ? { start } : null);
        if (copied === null) alreadyHeld++;
        else {
          bytesReceived += copied;
          synced.push(point.restorePointId);
        }
        current = null;
      }
      // only the VMs of points that passed the boundary: a refused point's vmId names no chain here
      if (job.retention) await this.applyRetention(job, runId, [...vmsHere]);
      if (older) this.logger.log(`sync ${job.syncJobId} run ${runId}: ${older} points older than the newest point here left out`);
      await this.gateway.execute(new SyncJobCommand(job.syncJobId, { kind: 'completeRun', result: { runId, synced, alreadyHeld, bytesReceived, durationMs: Date.now() - started, refused } }), SYNC_JOBS);
      this.logger.log(`sync ${job.syncJobId} run ${runId}: ${synced.length} points copied (${bytesReceived} bytes), ${alreadyHeld} already here${refused.length ? `, ${refused.length} refused` : ''}`);
    } catch (error) {
      const reason = signal.aborted ? String((signal.reason as Error)?.message ?? signal.reason) : (error as Error).message;
      this.logger.error(`sync ${job.syncJobId} run ${runId} failed: ${reason}`);
      await this.gateway
        .execute(new SyncJobCommand(job.syncJobId, { kind: 'failRun', result: { runId, reason, restorePointId: error instanceof PointFailure ? error.restorePointId : current, synced, bytesReceived } }), SYNC_JOBS)
        .catch((e: Error) => this.logger.error(`recording the failure of sync run ${runId} failed: ${e.message}`));
    } finally {
      await remote?.close().catch(() => undefined);
      // a chunk store is measured after what a run added, and collected after a run whose unrecorded point was removed
      if (chunks) this.chunkSpace.schedule(job.repositoryId, current !== null);
    }
  }

  /** Progress as events, one at a time: a report made while the previous one is being recorded is dropped (the next one says more). */
  private progressReporter(syncJobId: string, runId: string, restorePointId: string, diskId: string): (p: CopyProgress) => void {
    let recording = false;
    return ({ bytesDone, bytesPlanned, rate }) => {
      if (recording) return;
      recording = true;
      this.gateway
        .execute(new SyncJobCommand(syncJobId, { kind: 'progress', progress: { runId, restorePointId, diskId, bytesDone, bytesPlanned, rate: Math.round(rate) } }))
        .catch((e: Error) => this.logger.warn(`recording the progress of sync run ${runId} failed: ${e.message}`))
        .finally(() => (recording = false));
    };
  }

  private async heldHere(restorePointId: string): Promise<boolean> {
    return (await this.holderOf(restorePointId)) !== null;
  }

  /** The repository of this hub that holds the point, or null. */
  private holderOf(restorePointId: string): Promise<string | null> {
    return this.queries.execute(new GetRestorePointQuery(restorePointId)).then(
      (point: { repositoryId: string }) => point.repositoryId,
      (error: unknown) => {
        if (error instanceof DomainError && error.kind === 'not_found') return null;
        throw error;
      },
    );
  }

  /** What a run cut short left of the point it was copying: its files here (unless it was recorded) and its export on the remote. */
  private async clearUnfinished(root: string, job: SyncJobDefinition, unfinished: UnfinishedPoint, remote: RemoteConnection): Promise<void> {
    if (unfinished.exportId) await remote.closeExport(unfinished.exportId);
    await this.clearUnfinishedFiles(root, job.repositoryId, unfinished);
  }

  /** The files of a point a run started and did not record, and the qemu-nbd left writing them; a recorded point is left alone. */
  private async clearUnfinishedFiles(root: string, repositoryId: string, unfinished: UnfinishedPoint): Promise<void> {
    const chain = await this.chains.load(unfinished.vmId, repositoryId);
    if (pointOf(chain, unfinished.restorePointId)) return;
    // a hub killed mid-copy leaves the qemu-nbd it was writing through: it holds the file's lock, and is ours to end
    for (const file of unfinished.files) {
      for (const orphan of processesWithArgument((word) => namesImage(word, join(root, file)))) {
        this.logger.warn(`ending qemu-nbd ${orphan.pid}, left writing ${file} by a run cut short`);
        await terminateProcess(new AdoptedProcessHandle(orphan.pid, orphan.startTime), 5_000, `qemu-nbd left writing ${file}`);
      }
    }
    const removed = await this.files.remove(root, unfinished.vmId, unfinished.restorePointId, unfinished.files);
    if (removed.length) this.logger.warn(`removed what an earlier sync run left of restore point ${unfinished.restorePointId}: ${removed.join(', ')}`);
  }

  /**
   * One point: its digests fetched first, its disks' own clusters copied with each block hashed as it arrives and
   * compared with them (only the blocks the copy did not write are read back), its configuration copied, then
   * recorded. Returns the bytes received.
   */
  private async copyPoint(
    root: string,
    job: SyncJobDefinition,
    runId: string,
    sourceRepositoryId: string,
    point: RemotePoint,
    parent: RestorePoint | null,
    remote: RemoteConnection,
    signal: AbortSignal,
    /** Into a chunks repository: the point here each new point's disks start from (its parent, or else the VM's newest). */
    chunks: { start: RestorePoint | null } | null,
  ): Promise<number | null> {
    const id = point.restorePointId;
    const whole = parent === null;
    const targets = point.disks.map((d) => {
      const parentDisk = parent?.disks.find((p) => p.diskId === d.diskId);
      if (parent && !parentDisk) throw new PointFailure(id, `disk ${d.diskId} of restore point ${id} is not in its parent ${parent.restorePointId} here`);
      const file = chunks ? chunkPointFile(point.vmId, d.diskId, id) : targetPath(point.vmId, d.diskId, id);
      insideRoot(root, file);
      // a start as large as the disk or smaller (a disk that grew since: the chunk point grows on it, zeros after it)
      const startDisk = chunks?.start?.disks.find((s) => s.diskId === d.diskId && s.virtualSize <= d.virtualSize);
      return { diskId: d.diskId, file, parentFile: parentDisk?.file ?? null, virtualSize: d.virtualSize, source: d, startFile: startDisk?.file ?? null };
    });
    const exported = await remote.openExport(id);
    let bytes = 0;
    try {
      await this.gateway.execute(new SyncJobCommand(job.syncJobId, { kind: 'startPoint', point: { runId, restorePointId: id, vmId: point.vmId, files: targets.map((t) => t.file), exportId: exported.exportId } }), SYNC_JOBS);
      try {
        const disks: PointDisk[] = [];
        for (const target of targets) {
          signal.throwIfAborted();
          // the digests first: each block is checked against them as it arrives
          const digestBytes = await remote.digests(id, target.diskId);
          bytes += digestBytes.length;
          const ref = target.source.digests!;
          if (sha256(digestBytes) !== ref.sha256) throw new PointFailure(id, `the digests of disk ${target.diskId} of ${id} arrived damaged (SHA-256 ${sha256(digestBytes)}, the remote recorded ${ref.sha256})`);
          const digestFile = digestFileOf(point.vmId, id, target.diskId);
          await writeDurably(root, digestFile, digestBytes);
          const expected = await readDigestFile(root, { ...ref, file: digestFile });
          if (!chunks) await this.files.create(root, target);
          const served = exported.disks.find((d) => d.diskId === target.diskId);
          if (!served?.psk) throw new PointFailure(id, `the remote hub served disk ${target.diskId} of ${id} without a TLS key`);
          // a remote chunk point has no layers to tell (its server offers base:allocation alone): its digests say what it wrote
          const layered = !(typeof target.source.file === 'string' && isChunkPointFile(target.source.file));
          const source = await openNbd({ transport: 'tcp', host: served.host, port: served.port, exportName: served.exportName }, { startTls: pskStartTls(served.psk), metaContexts: layered ? [QEMU_ALLOCATION_DEPTH, BASE_ALLOCATION] : [BASE_ALLOCATION] });
          let received: BlockDigests;
          try {
            const ranges = await this.rangesToCopy(root, point, target, expected, whole, source.metaContexts.has(QEMU_ALLOCATION_DEPTH));
            const written = chunks ? await exportChunkPointForWriting(join(root, target.file), { size: target.virtualSize, base: target.startFile ? join(root, target.startFile) : null }, this.exportArea) : await exportForWriting(join(root, target.file), this.exportArea);
            try {
              const report = this.progressReporter(job.syncJobId, runId, id, target.diskId);
              const summary = await copyDisk({
                source,
                target: written.client,
                ...(ranges ? { mode: 'incremental', ranges } : { mode: whole ? 'full' : 'layer' }),
                digests: true,
                signal,
                onProgress: report,
                progressIntervalMs: PROGRESS_EVERY_MS,
                ...(job.maxBytesPerSecond ? { maxBytesPerSecond: job.maxBytesPerSecond } : {}),
              });
              bytes += summary.bytesRead;
              received = summary.digests!;
              this.logger.log(`copied disk ${target.diskId} of ${id}: ${(summary.bytesRead / 1048576).toFixed(1)} MiB read in ${summary.durationMs} ms`);
            } finally {
              await written.close();
            }
          } finally {
            await source.close().catch(() => undefined);
          }
          await this.checkAgainstDigests(root, id, target, expected, received);
          let digests = { file: digestFile, sha256: ref.sha256, blocks: expected.blockCount };
          if (whole && point.type !== 'full') {
            // recorded here as a full, its digests must name every block it holds: the remote's name only what the
            // incremental wrote, and a verify, or a hub syncing from here, takes a full's unnamed blocks for zeros
            const complete = await this.hashNewPoint(root, target.file);
            const content = complete.encode();
            await writeDurably(root, digestFile, content);
            digests = { file: digestFile, sha256: sha256(content), blocks: complete.blockCount };
          }
          disks.push({ diskId: target.diskId, file: target.file, parentFile: target.parentFile, virtualSize: target.virtualSize, fileBytes: (await stat(join(root, target.file))).size, changeRef: target.source.changeRef, digests });
        }
        let configuration = point.configuration;
        if (configuration) {
          const content = await remote.configuration(id);
          bytes += content.length;
          if (sha256(content) !== configuration.sha256) throw new PointFailure(id, `the configuration of ${id} arrived damaged`);
          const file = configurationFileOf(point.vmId, id);
          await writeDurably(root, file, content);
          // the fields named, not the remote's object spread: nothing else of it reaches the event
          configuration = { file, sha256: configuration.sha256, nvram: configuration.nvram === true, tpm: configuration.tpm === true };
        }
        await remote.closeExport(exported.exportId);
        const synced: RestorePoint = {
          restorePointId: id,
          vmId: point.vmId,
          repositoryId: job.repositoryId,
          backupId: null,
          type: whole ? 'full' : point.type,
          parentId: whole ? null : point.parentId,
          createdAt: point.createdAt,
          // the immutability window runs from when this hub sealed the copy, by this hub's clock: the remote's createdAt says nothing here
          lockedFrom: new Date().toISOString(),
          disks,
          ...(point.consistency ? { consistency: point.consistency, consistencyReason: point.consistencyReason, freezeMs: point.freezeMs } : {}),
          configuration,
          // a copy that lacks a disk says so here as it did there
          ...(point.disksLeftOut?.length ? { disksLeftOut: keptLeftOut(point.disksLeftOut) } : {}),
        };
        await this.files.writeManifest(root, synced);
        const source: PointSource = { remoteId: job.remoteId, syncJobId: job.syncJobId, runId, sourceRepositoryId, sourceBackupId: point.backupId, bytesReceived: bytes };
        // held by now only if a rescan recorded it meanwhile: of this repository (these files are that point), or of another
        const holder = await recordUnlessHeld(this.connection, id, (pointId) => this.holderOf(pointId), async () => void (await this.gateway.execute(new SyncRestorePointCommand(synced, source), RESTORE_POINTS)));
        if (holder !== null && holder !== job.repositoryId) throw new HeldMeanwhile(`restore point ${id} was recorded in repository ${holder} while it was copied`);
        await this.immutable.seal(synced).catch((e) => this.logger.error(`restore point ${id} could not be made immutable: ${String(e)}`));
        return bytes;
      } catch (error) {
        // nothing of an unrecorded point stays: the next run copies it again from the start; a point recorded before the
        // error (its read model not caught up, a database failover) is this hub's, and so are its files
        const recorded = await this.chains.load(point.vmId, job.repositoryId).then((chain) => pointOf(chain, id) !== undefined, () => true);
        if (!recorded) await this.files.remove(root, point.vmId, id, targets.map((t) => t.file)).catch((e: Error) => this.logger.error(`removing the partial copy of ${id} failed: ${e.message}`));
        if (error instanceof HeldMeanwhile) {
          this.logger.warn(`sync ${job.syncJobId} run ${runId}: ${error.message}; its copy here is removed`);
          return null;
        }
        throw error instanceof PointFailure ? error : new PointFailure(id, `copying restore point ${id} failed: ${(error as Error).message}`);
      }
    } finally {
      await remote.closeExport(exported.exportId).catch((e: Error) => this.logger.warn(`closing export ${exported.exportId} on the remote hub failed: ${e.message}`));
    }
  }

  /**
   * The job's own prune rules on each chain it fills, as a policy's retention prunes (merges into the next point;
   * an immutable repository's chains go whole, newest first). A point that cannot go now (in use, locked) stays and
   * is named with the reason; the next run tries again.
   */
  private async applyRetention(job: SyncJobDefinition, runId: string, vmIds: string[]): Promise<void> {
    const { immutableDays } = await this.repositories.definition(job.repositoryId);
    for (const vmId of vmIds) {
      const marks = chainPruneMarks(await this.chains.load(vmId, job.repositoryId), job.retention!, job.timeZone ?? 'UTC', !!immutableDays);
      const pruned: string[] = [];
      const deferred: { restorePointId: string; reason: string }[] = [];
      for (const mark of deletionOrder(marks, !!immutableDays)) {
        try {
          await this.deletion.delete(mark.restorePointId, { reason: `pruned by sync job ${job.syncJobId}` });
          pruned.push(mark.restorePointId);
        } catch (error) {
          if (error instanceof DomainError && error.kind === 'not_found') continue;
          deferred.push({ restorePointId: mark.restorePointId, reason: (error as Error).message });
        }
      }
      if (pruned.length || deferred.length) {
        await this.gateway.execute(new SyncJobCommand(job.syncJobId, { kind: 'recordRetention', result: { runId, vmId, repositoryId: job.repositoryId, kept: marks.filter((m) => m.keep).length, pruned, deferred } }), SYNC_JOBS);
      }
    }
  }

  /**
   * The blocks to read from the remote when the copy cannot take them from the source's own layer: null for a copy
   * by the source's contexts (a whole point into an empty target; a qcow2 point's own layer onto its parent). A point
   * copied whole onto a chunk point here reads only the blocks whose digest differs from that point's (a full's
   * digests name every block it holds; blocks outside them are zeros). A point of a remote chunk store, which tells no
   * layers, copied onto its parent reads the blocks its digests cover: those it wrote. What is not read is the start
   * point's, and the check after the copy reads it back here against the digests.
   */
  private async rangesToCopy(root: string, point: RemotePoint, target: { virtualSize: number; startFile: string | null }, expected: BlockDigests, whole: boolean, layers: boolean): Promise<{ offset: number; length: number }[] | null> {
    if (!whole) return layers ? null : blockRanges(expected.runs, target.virtualSize);
    if (!target.startFile) return null;
    const start = await chunkPointDigests(join(root, target.startFile));
    if (!start) return null;
    const differing: { first: number; count: number }[] = [];
    for (let b = 0; b < Math.ceil(target.virtualSize / DIGEST_BLOCK_SIZE); b++) {
      const want = expected.digestAt(b) ?? (point.type === 'full' ? zeroDigest(expected.blockLength(b)) : null);
      const have = start.digestAt(b);
      if (want && have && want.equals(have)) continue;
      const last = differing.at(-1);
      if (last && last.first + last.count === b) last.count++;
      else differing.push({ first: b, count: 1 });
    }
    return blockRanges(differing, target.virtualSize);
  }

  /** Every block of a point written here, read back through its own view, hashed. */
  private async hashNewPoint(root: string, file: string): Promise<BlockDigests> {
    const view = await openPoint(join(root, file), this.exportArea);
    try {
      return await hashWholeDisk(view.source);
    } finally {
      await view.close();
    }
  }

  /**
   * Every block the point's digests name, as it arrived: the copy hashed each block it wrote, so the data is not
   * read a second time. A block the copy did not write (a full's block of zeroes the remote keeps unallocated) is read
   * back here through the new file's chain. A point that does not match is never recorded.
   * What is hashed is what the copy handed to the new file's qemu-nbd, not what the disk then holds: a write or the
   * final flush the target refuses (EIO, ENOSPC) fails the copy and the point, but a disk that stores other bytes than
   * it acknowledged is found only by a later read against the digests (a verify, a whole-VM restore); the point stays
   * `unverified` until a verify has read it.
   */
  private async checkAgainstDigests(root: string, restorePointId: string, disk: { diskId: string; file: string }, expected: BlockDigests, received: BlockDigests): Promise<void> {
    const mismatches: { offset: number; length: number; expected: string; actual: string }[] = [];
    for (const run of expected.runs) {
      for (let b = run.first; b < run.first + run.count; b++) {
        const got = received.digestAt(b);
        const want = expected.digestAt(b)!;
        if (got && !got.equals(want)) mismatches.push({ offset: b * DIGEST_BLOCK_SIZE, length: expected.blockLength(b), expected: want.toString('hex'), actual: got.toString('hex') });
      }
    }
    const unreceived = expected.minus(received.runs);
    if (unreceived.runs.length) {
      const exported = await exportPoint(join(root, disk.file), this.exportArea);
      try {
        mismatches.push(...(await checkBlocks(exported.client, unreceived)).mismatches);
      } finally {
        await exported.close();
      }
    }
    if (mismatches.length) {
      const m = mismatches.sort((a, b) => a.offset - b.offset)[0];
      throw new PointFailure(
        restorePointId,
        `disk ${disk.diskId} of restore point ${restorePointId} did not arrive intact: the block at offset ${m.offset} (${m.length} bytes) reads ${m.actual}, its digest is ${m.expected}${mismatches.length > 1 ? ` (and ${mismatches.length - 1} more blocks)` : ''}`,
      );
    }
  }
}

/** Sorted runs of blocks as byte ranges, neighbours merged, the last clamped to the disk: one entry per run, not per block. */
function blockRanges(runs: readonly { first: number; count: number }[], size: number): { offset: number; length: number }[] {
  const out: { offset: number; length: number }[] = [];
  for (const { first, count } of runs) {
    const offset = first * DIGEST_BLOCK_SIZE;
    const length = Math.min(count * DIGEST_BLOCK_SIZE, size - offset);
    const last = out.at(-1);
    if (last && last.offset + last.length === offset) last.length += length;
    else out.push({ offset, length });
  }
  return out;
}

function sha256(content: Buffer): string {
  return createHash('sha256').update(content).digest('hex');
}

/** `relative` is built from the remote's ids: it is checked to stay in the repository before anything is created. */
async function writeDurably(root: string, relative: string, content: Buffer): Promise<void> {
  const file = insideRoot(root, relative);
  await mkdir(dirname(file), { recursive: true, mode: 0o750 });
  await writeFileAtomic(file, content);
}
