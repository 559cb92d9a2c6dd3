import { Inject, Injectable, Logger, OnApplicationBootstrap, OnModuleDestroy } from '@nestjs/common';
import { QueryBus } from '@nestjs/cqrs';
import { randomUUID } from 'node:crypto';
import { join } from 'node:path';
import { isChunkPointFile } from '../repositories/chunks/chunk-points';
import { HUB_CONFIG, HubConfig } from '../config/hub-config';
import { HUB_INSTANCE } from '../config/hub-instance';
import { DomainError } from '../eventing/domain-error';
import { currentContext, runWithContext, SYSTEM_ACTOR } from '../eventing/request-context';
import { NbdExportsService, StartedExport } from '../nbd/exports/nbd-exports.service';
import type { NbdPsk } from '../nbd-protocol/tls-psk';
import { CommandGateway } from '../projection-runner/command-gateway';
import { HubLiveness, OwnersGone } from '../projection-runner/hub-liveness';
import { ProjectionsService } from '../projection-runner/projections.service';
import { repeatAfter } from '../process/repeat';
import { RepositoriesService } from '../repositories/registry/repositories.service';
import { ChainStates } from '../restore-points/chain-states';
import { GetRestorePointQuery } from '../restore-points/queries/get-restore-point.query';
import { ClosePointExportCommand } from './commands/close-point-export.command';
import { OpenPointExportCommand } from './commands/open-point-export.command';
import { readTarget } from './download-target';
import { exportUri, plainExportRefusal } from './point-export.aggregate';
import { PointExportCloseReason, PointExportDisk } from './point-export.events';
import { PointExportStates } from './point-export-states';
import { GetPointExportQuery, OpenPointExportsByQuery, OpenPointExportsQuery, OthersOpenPointExportsQuery, PointExportRecord } from './queries/point-exports.query';

/** Open exports one token may hold at once; a sync holds one at a time, a person a few. */
export const MAX_OPEN_EXPORTS_PER_TOKEN = 16;

export const POINT_EXPORTS_READ_MODEL = 'point-exports';

export interface OpenedPointExport {
  exportId: string;
  restorePointId: string;
  disks: { diskId: string; host: string; port: number; exportName: string; uri: string; tls: boolean; psk?: NbdPsk }[];
}

/**
 * Read-only NBD exports of a restore point's disks for tools outside the hub (nbdcopy, qemu-img,
 * a hypervisor): one hub export (port lease, qemu-nbd of the point's top file reading its chain)
 * per disk through NbdExportsService, recorded as one PointExportOpened once all of them serve.
 * While open, the exported files block deletes and merges (ExportsHoldFiles). They are stopped
 * on request, when one of them dies, at hub shutdown; after a crash the ones that survived are
 * adopted and the others recorded closed.
 */
@Injectable()
export class PointExportWorkflow implements OnApplicationBootstrap, OnModuleDestroy {
  private readonly logger = new Logger('point-exports');
  private readonly nbdBind: string;
  /** The open exports this process runs, by export id, with their leases. */
  private readonly open = new Map<string, string[]>();

  private readonly owners: OwnersGone;
  private orphanSweep?: { stop(): Promise<void> };
  private stopping = false;

  constructor(
    @Inject(HUB_CONFIG) private readonly config: HubConfig,
    @Inject(HUB_INSTANCE) private readonly instance: string,
    private readonly gateway: CommandGateway,
    private readonly queries: QueryBus,
    private readonly projections: ProjectionsService,
    private readonly chains: ChainStates,
    private readonly repositories: RepositoriesService,
    private readonly nbd: NbdExportsService,
    private readonly states: PointExportStates,
    liveness: HubLiveness,
  ) {
    this.owners = new OwnersGone(liveness, config.goneHubAfterMs);
    this.nbdBind = config.nbdBind;
    nbd.onUnexpectedExit((leaseId, detail) => {
      const exportId = [...this.open].find(([, leases]) => leases.includes(leaseId))?.[0];
      if (exportId) void this.closeAsSystem(exportId, 'qemu-nbd-exited', detail);
    });
  }

  /**
   * Exports whose qemu-nbds survived a crash of the hub were adopted by NbdExportsService and stay open; the others are
   * recorded closed. A disk's export the crash left before its export was recorded open was never named to anyone: it
   * is stopped, or it would hold its port and its point against deletes, adopted again at every start.
   */
  async onApplicationBootstrap(): Promise<void> {
    await this.nbd.whenReconciled();
    await this.projections.waitForCaughtUp(POINT_EXPORTS_READ_MODEL);
    const recorded = await this.queries.execute(new OpenPointExportsQuery(this.instance));
    const named = new Set(recorded.map(({ exportId }) => `pe-${exportId}`));
    for (const { leaseId, jobId } of await this.nbd.running()) {
      if (!jobId.startsWith('pe-') || named.has(jobId)) continue;
      this.logger.warn(`stopping export ${leaseId} of ${jobId}: the hub stopped while opening it, before anyone was told of it`);
      await this.nbd.stop(leaseId, 'its restore point export was never recorded open').catch((e) => this.logger.error(`stopping export ${leaseId}: ${String(e)}`));
    }
    for (const { exportId, leaseIds } of recorded) {
      if (leaseIds.every((l) => this.nbd.isRunning(l))) {
        this.open.set(exportId, leaseIds);
        this.logger.log(`export ${exportId} survived the restart of the hub and stays open`);
        continue;
      }
      await this.closeAsSystem(exportId, 'hub-restart', 'its qemu-nbd did not survive the restart of the hub', leaseIds);
    }
    if (!this.stopping) this.orphanSweep = repeatAfter(this.config.goneHubCheckMs, () => this.takeOverOrphans());
  }

  /**
   * Open exports of a hub process that is gone for good are closed (`hub-gone`) and their ports released: only their
   * process could close them, and until then they held their points against deletes. Its qemu-nbds went with its
   * host, or its next start stops them.
   */
  private async takeOverOrphans(): Promise<void> {
    const orphans = await this.queries.execute(new OthersOpenPointExportsQuery(this.instance));
    await this.owners.takeOver(orphans, (o) => o.hubInstance, async ({ exportId, leaseIds }, owner) => {
      const detail = `its hub process ${owner} stopped and did not come back`;
      await runWithContext({ correlationId: randomUUID(), actor: SYSTEM_ACTOR }, async () => {
        await this.nbd.abandon(leaseIds, owner, detail);
        await this.nbd.releaseJob(`pe-${exportId}`);
        await this.gateway.execute(new ClosePointExportCommand(exportId, 'hub-gone', detail), POINT_EXPORTS_READ_MODEL);
      }).then(
        () => this.logger.warn(`export ${exportId} closed (hub-gone): ${detail}`),
        (e) => this.logger.error(`closing export ${exportId} of a gone hub failed: ${String(e)}`),
      );
    }, () => this.stopping);
  }

  /** NbdExportsService stops every qemu-nbd at shutdown; this records that the exports ended with them. */
  async onModuleDestroy(): Promise<void> {
    this.stopping = true;
    await this.orphanSweep?.stop();
    for (const exportId of [...this.open.keys()]) {
      this.open.delete(exportId);
      await runWithContext({ correlationId: randomUUID(), actor: SYSTEM_ACTOR }, () => this.gateway.execute(new ClosePointExportCommand(exportId, 'hub-shutdown', 'the hub stopped'))).catch((e) =>
        this.logger.error(`recording the close of export ${exportId} at shutdown failed: ${String(e)}`),
      );
    }
  }

  /**
   * `abandoned`: aborted when the caller stopped waiting for the answer (a sync's request timed out, its tunnel
   * dropped). The export is then closed again before the answer: only the answer names it, and an export nobody
   * closes holds its ports and its point against deletes for as long as the hub runs.
   */
  async openExport(restorePointId: string, tls: boolean, diskIds: string[] | undefined, requestHost: string, abandoned?: AbortSignal): Promise<OpenedPointExport> {
    const refusal = plainExportRefusal(tls, this.nbdBind);
    if (refusal) throw new DomainError('invalid', refusal);
    // an export lives until it is closed, and holds NBD ports backups lease from and its point against deletes: one
    // token (a sync token of another hub, say) must not take the pool or hold every point by opening them in a loop
    const { actor } = currentContext();
    const held = await this.queries.execute(new OpenPointExportsByQuery(actor));
    if (held >= MAX_OPEN_EXPORTS_PER_TOKEN) {
      throw new DomainError('conflict', `${actor} holds ${held} open restore point exports, the most one token may: close one (DELETE /api/v1/restore-point-exports/{exportId}) first`);
    }
    const view = await this.queries.execute(new GetRestorePointQuery(restorePointId));
    const root = (await this.repositories.usable(view.repositoryId)).root;
    const state = await this.chains.load(view.vmId, view.repositoryId);
    const point = state.points.find((p) => p.restorePointId === restorePointId);
    const wanted = diskIds ?? point?.disks.map((d) => d.diskId) ?? [];
    const disks = wanted.map((diskId) => readTarget(state, restorePointId, diskId).disk);
    const exportId = randomUUID();
    const host = tls ? clientHost(this.nbdBind, requestHost) : '127.0.0.1';
    const started: { diskId: string; export: StartedExport | Omit<StartedExport, 'position'> }[] = [];
    try {
      for (const disk of disks) {
        const running = await this.nbd.startAndShow({ jobId: `pe-${exportId}`, diskId: disk.diskId, file: join(root, disk.file), format: isChunkPointFile(disk.file) ? 'chunks' : 'qcow2', readOnly: true, bitmap: null, tls });
        started.push({ diskId: disk.diskId, export: running });
      }
    } catch (error) {
      await this.stopLeases(started.map((s) => s.export.leaseId));
      throw error;
    }
    const exported: PointExportDisk[] = started.map(({ diskId, export: e }) => ({ diskId, file: join(root, disks.find((d) => d.diskId === diskId)!.file), leaseId: e.leaseId, port: e.port, host, exportName: e.exportName }));
    try {
      await this.gateway.execute(new OpenPointExportCommand({ exportId, restorePointId, vmId: view.vmId, repositoryId: view.repositoryId, hubInstance: this.instance, tls, disks: exported }, this.nbdBind), POINT_EXPORTS_READ_MODEL);
    } catch (error) {
      await this.stopLeases(exported.map((d) => d.leaseId));
      throw error;
    }
    this.open.set(exportId, exported.map((d) => d.leaseId));
    // a disk's qemu-nbd that ended before the export was open here was told to nobody (its exit looked for an open export)
    const ended = exported.find((d) => !this.nbd.isRunning(d.leaseId));
    if (ended) {
      const detail = `the qemu-nbd of disk ${ended.diskId} ended while the export was opened`;
      await this.closeAsSystem(exportId, 'qemu-nbd-exited', detail);
      throw new Error(`the export of restore point ${restorePointId} was closed again: ${detail} (its log says why)`);
    }
    if (abandoned?.aborted) {
      await this.close(exportId, exported.map((d) => d.leaseId), 'answer-abandoned', 'the request that opened it ended before its answer');
      throw new DomainError('conflict', `the export of restore point ${restorePointId} was closed again: the request ended before its answer`);
    }
    return {
      exportId,
      restorePointId,
      disks: started.map(({ diskId, export: e }) => ({ diskId, host, port: e.port, exportName: e.exportName, uri: exportUri(host, e.port, e.exportName, tls), tls, ...(e.psk ? { psk: { ...e.psk } } : {}) })),
    };
  }

  /** Stops its qemu-nbds (answering once they are gone and their ports released); closing a closed export changes nothing. */
  async closeExport(exportId: string): Promise<PointExportRecord> {
    const state = await this.states.of(exportId);
    if (state.status === 'none') throw new DomainError('not_found', `restore point export ${exportId} does not exist`);
    if (state.status === 'open') {
      if (state.opened!.hubInstance !== this.instance) throw new DomainError('conflict', `export ${exportId} is served by another hub process (${state.opened!.hubInstance})`);
      await this.close(exportId, state.opened!.disks.map((d) => d.leaseId), 'requested');
    }
    return this.queries.execute(new GetPointExportQuery(exportId));
  }

  /** Stops the export's qemu-nbds here (their ports released once they are gone), then records its close. */
  private async close(exportId: string, leaseIds: string[], reason: PointExportCloseReason, detail: string | null = null): Promise<void> {
    this.open.delete(exportId);
    await this.stopLeases(leaseIds);
    await this.gateway.execute(new ClosePointExportCommand(exportId, reason, detail), POINT_EXPORTS_READ_MODEL);
  }

  private async closeAsSystem(exportId: string, reason: PointExportCloseReason, detail: string, leaseIds = this.open.get(exportId) ?? []): Promise<void> {
    try {
      await runWithContext({ correlationId: randomUUID(), actor: SYSTEM_ACTOR }, () => this.close(exportId, leaseIds, reason, detail));
      this.logger.warn(`export ${exportId} closed (${reason}): ${detail}`);
    } catch (error) {
      this.logger.error(`closing export ${exportId} (${reason}) failed: ${String(error)}`);
    }
  }

  /** Those still running here; a lease whose qemu-nbd already exited was released when it did. */
  private async stopLeases(leaseIds: string[]): Promise<void> {
    for (const leaseId of leaseIds) {
      if (!this.nbd.isRunning(leaseId)) continue;
      await this.nbd.stopAndShow(leaseId).catch((e) => this.logger.error(`stopping export lease ${leaseId} failed: ${String(e)}`));
    }
  }
}

/**
 * The address a client dials: the NBD bind address when it names one, else the host the client
 * reached the API by (a wildcard bind listens on every address of the host, that one included).
 */
export function clientHost(nbdBind: string, requestHost: string): string {
  if (nbdBind !== '0.0.0.0' && nbdBind !== '::') return nbdBind;
  const host = requestHost.replace(/^\[(.*)\]$/, '$1');
  return host || '127.0.0.1';
}
