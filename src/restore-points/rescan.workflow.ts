import { Inject, Injectable, Logger } from '@nestjs/common';
import { CommandBus } from '@nestjs/cqrs';
import { stat } from 'node:fs/promises';
import { join } from 'node:path';
import { DbConnection } from '../database/db-connection';
import { inHubTurn } from '../database/hub-turns';
import { DB_CONNECTION, ProjectionsService } from '../projection-runner/projections.service';
import { listManifests, RestorePointManifest } from '../repositories/qcow2/manifest';
import { ChunkSpaceWorkflow } from '../repositories/chunk-space.workflow';
import { RepositoriesService } from '../repositories/registry/repositories.service';
import { RestorePoint } from './chain.events';
import { RecordRescanFindingCommand } from './commands/record-rescan-finding.command';
import { ImmutablePoints } from './immutable-points';
import { keptLeftOut } from '../wire/backup-protocol';

export interface RescanReport {
  vms: string[];
  added: string[];
  alreadyKnown: string[];
  broken: { restorePointId: string | null; reason: string }[];
  /** Points held already elsewhere on this hub (a restore point id names one point): not recorded again. */
  duplicates: { restorePointId: string; reason: string }[];
  invalidManifests: { file: string; error: string }[];
}

const READ_MODEL = 'restore-points';

/**
 * Rebuilds chains from the manifests in a repository, so losing the database does not lose
 * the backups: every manifest is recorded as a finding, parents before children, and the chain
 * decides whether it is new, known, or a break (files or parent missing).
 */
@Injectable()
export class RescanWorkflow {
  private readonly logger = new Logger('repositories');

  constructor(
    private readonly commands: CommandBus,
    private readonly projections: ProjectionsService,
    private readonly repositories: RepositoriesService,
    private readonly immutable: ImmutablePoints,
    private readonly chunkSpace: ChunkSpaceWorkflow,
    @Inject(DB_CONNECTION) private readonly connection: DbConnection,
  ) {}

  /**
   * One rescan at a time across the hubs of a database (and no sync recording a point meanwhile), each until the
   * read model holds what it recorded: a copy of a repository rescanned beside it would otherwise find every point
   * new in both, record each twice, and stop the restore-points read model for good on the second.
   */
  rescan(repositoryId: string): Promise<RescanReport> {
    return inHubTurn(this.connection, 'pointIds', () => this.rescanInTurn(repositoryId));
  }

  private async rescanInTurn(repositoryId: string): Promise<RescanReport> {
    const repository = await this.repositories.definition(repositoryId);
    const { root } = repository;
    const { manifests, invalid } = await listManifests(root);
    const report: RescanReport = { vms: [], added: [], alreadyKnown: [], broken: [], duplicates: [], invalidManifests: invalid };
    let position: string | null = null;
    const byVm = new Map<string, RestorePointManifest[]>();
    for (const m of manifests) byVm.set(m.vmId, [...(byVm.get(m.vmId) ?? []), m]);
    for (const [vmId, vmManifests] of byVm) {
      report.vms.push(vmId);
      for (const manifest of inChainOrder(vmManifests)) {
        const point = fromManifest(manifest, repositoryId);
        const finding = await this.commands.execute(new RecordRescanFindingCommand(point, await missingFiles(root, manifest)));
        // a point found again in an immutable repository is sealed as a backup's is (its files may have lost the attribute in a copy)
        if (finding.outcome === 'added') await this.immutable.seal(point, repository).catch((e) => this.logger.error(`restore point ${point.restorePointId} could not be made immutable: ${String(e)}`));
        position = finding.position ?? position;
        if (finding.outcome === 'known') report.alreadyKnown.push(manifest.restorePointId);
        if (finding.outcome === 'added') report.added.push(manifest.restorePointId);
        if (finding.outcome === 'broken') report.broken.push({ restorePointId: manifest.restorePointId, reason: finding.reason! });
        if (finding.outcome === 'duplicate') report.duplicates.push({ restorePointId: manifest.restorePointId, reason: finding.reason! });
      }
    }
    await this.projections.waitFor(READ_MODEL, position);
    // a chunk store found again is measured, so the rebuilt hub shows what it holds (nothing for qcow2)
    this.chunkSpace.schedule(repositoryId, false);
    return report;
  }
}

/** Parents before children; among roots and siblings, oldest first. */
function inChainOrder(manifests: RestorePointManifest[]): RestorePointManifest[] {
  const ids = new Set(manifests.map((m) => m.restorePointId));
  const byCreated = [...manifests].sort((a, b) => a.createdAt.localeCompare(b.createdAt) || a.restorePointId.localeCompare(b.restorePointId));
  const out: RestorePointManifest[] = [];
  const placed = new Set<string>();
  const visit = (m: RestorePointManifest) => {
    if (placed.has(m.restorePointId)) return;
    placed.add(m.restorePointId);
    out.push(m);
    for (const child of byCreated.filter((c) => c.parentId === m.restorePointId)) visit(child);
  };
  for (const m of byCreated) if (!m.parentId || !ids.has(m.parentId)) visit(m);
  return out;
}

async function missingFiles(root: string, manifest: RestorePointManifest): Promise<string[]> {
  const missing: string[] = [];
  for (const d of manifest.disks) if (!(await stat(join(root, d.file)).then(() => true, () => false))) missing.push(d.file);
  return missing;
}

export function fromManifest(m: RestorePointManifest, repositoryId: string): RestorePoint {
  return { restorePointId: m.restorePointId, vmId: m.vmId, repositoryId, backupId: null, type: m.type, parentId: m.parentId, createdAt: m.createdAt, disks: m.disks.map((d) => ({ ...d })), ...(m.configuration ? { configuration: m.configuration } : {}), ...(m.disksLeftOut?.length ? { disksLeftOut: keptLeftOut(m.disksLeftOut) } : {}) };
}
