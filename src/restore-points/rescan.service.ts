import { Injectable } from '@nestjs/common';
import { stat } from 'node:fs/promises';
import { join } from 'node:path';
import { AggregateRepository } from '../eventing/aggregate-repository';
import { listManifests, RestorePointManifest } from '../repositories/qcow2/manifest';
import { RepositoriesService } from '../repositories/registry/repositories.service';
import { chainAggregate, pointOf } from './chain.aggregate';
import { chainStream, RestorePoint } from './chain.events';

export interface RescanReport {
  vms: string[];
  added: string[];
  alreadyKnown: string[];
  broken: { restorePointId: string | null; reason: string }[];
  invalidManifests: { file: string; error: string }[];
  position: string | null;
}

/**
 * Rebuilds chains from the manifests in a repository, so losing the database
 * does not lose the backups: every point not yet in its chain is added as an
 * event, oldest first; a point whose files or parent are missing marks the chain broken.
 */
@Injectable()
export class RescanService {
  constructor(
    private readonly aggregates: AggregateRepository,
    private readonly repositories: RepositoriesService,
  ) {}

  async rescan(repositoryId: string): Promise<RescanReport> {
    const root = (await this.repositories.definition(repositoryId)).root;
    const { manifests, invalid } = await listManifests(root);
    const report: RescanReport = { vms: [], added: [], alreadyKnown: [], broken: [], invalidManifests: invalid, position: null };
    const byVm = new Map<string, RestorePointManifest[]>();
    for (const m of manifests) byVm.set(m.vmId, [...(byVm.get(m.vmId) ?? []), m]);
    for (const [vmId, vmManifests] of byVm) {
      report.vms.push(vmId);
      const stream = chainStream(vmId, repositoryId);
      for (const manifest of inChainOrder(vmManifests)) {
        const { state } = await this.aggregates.load(stream, chainAggregate);
        if (pointOf(state, manifest.restorePointId)) {
          report.alreadyKnown.push(manifest.restorePointId);
          continue;
        }
        const missing = await missingFiles(root, manifest);
        const reason = missing.length
          ? `files missing: ${missing.join(', ')}`
          : manifest.parentId && !pointOf(state, manifest.parentId)
            ? `parent ${manifest.parentId} is not in the chain`
            : null;
        if (reason) {
          const broken = await this.aggregates.execute(stream, chainAggregate, { kind: 'recordBroken', restorePointId: manifest.restorePointId, reason });
          report.broken.push({ restorePointId: manifest.restorePointId, reason });
          report.position = broken.position ?? report.position;
          continue;
        }
        const added = await this.aggregates.execute(stream, chainAggregate, { kind: 'add', point: fromManifest(manifest, repositoryId) });
        report.added.push(manifest.restorePointId);
        report.position = added.position ?? report.position;
      }
    }
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

function fromManifest(m: RestorePointManifest, repositoryId: string): RestorePoint {
  return { restorePointId: m.restorePointId, vmId: m.vmId, repositoryId, backupId: null, type: m.type, parentId: m.parentId, createdAt: m.createdAt, disks: m.disks.map((d) => ({ ...d })) };
}
