import { Injectable } from '@nestjs/common';
import { join } from 'node:path';
import { measure } from '../../qemu/qemu-img';
import { isChunkPointFile } from '../../repositories/chunks/chunk-points';
import { measureChunkPoint } from '../../repositories/chunks/point-server';
import { readConfigurationFile } from '../../repositories/qcow2/configuration-files';
import { readDigestFile } from '../../repositories/qcow2/digest-files';
import { RepositoriesService } from '../../repositories/registry/repositories.service';
import { integrityOf, pointOf } from '../../restore-points/chain.aggregate';
import { RestorePoint } from '../../restore-points/chain.events';
import { RestorePointsService } from '../../restore-points/restore-points.service';
import { BlockDigests } from '../../wire/block-digests';
import type { RestoreCheckRequest } from '../../wire/restore-protocol';
import type { VmConfiguration } from '../../wire/vm-configuration';

export interface FoundPoint {
  point: RestorePoint;
  /** Oldest first, ending with the point. */
  lineage: RestorePoint[];
  root: string;
  /** A point of the lineage (the point or one it reads through) whose delete is rewriting the chain's files now. */
  deleting: string | null;
  /** The points of the lineage marked corrupt. */
  corrupt: string[];
}

/**
 * What a restore reads of a point in the repository: its disks' files, its recorded configuration, and each
 * disk's digests as the point reads it (every block from the newest point of its lineage that wrote it).
 */
@Injectable()
export class PointView {
  constructor(
    private readonly points: RestorePointsService,
    private readonly repositories: RepositoriesService,
  ) {}

  async point(vmId: string, repositoryId: string, restorePointId: string): Promise<FoundPoint | null> {
    const chain = await this.points.chain(vmId, repositoryId);
    const point = pointOf(chain, restorePointId);
    if (!point) return null;
    const lineage: RestorePoint[] = [];
    for (let p: RestorePoint | undefined = point; p; p = p.parentId ? pointOf(chain, p.parentId) : undefined) lineage.unshift(p);
    const deleting = chain.pending && lineage.some((p) => p.restorePointId === chain.pending!.restorePointId) ? chain.pending.restorePointId : null;
    const corrupt = lineage.filter((p) => integrityOf(chain, p.restorePointId).status === 'corrupt').map((p) => p.restorePointId);
    return { point, lineage, root: (await this.repositories.usable(repositoryId)).root, deleting, corrupt };
  }

  /**
   * Whether the point still reads as it did (`before`, seen before the restore exported it) once no delete in
   * its lineage is under way. A delete that passed its in-use check before the exports held the files either
   * sees them when it checks again and steps back (the files are as they were: the restore goes on) or rewrites
   * the chain under the exports (the restore fails). A lineage point newly marked corrupt (a delete that stopped
   * midway, a verify that found damage) fails it too: the restore was accepted for a point that was not.
   */
  async settled(before: FoundPoint, wait: { timeoutMs: number; pollMs: number; stop: () => boolean }): Promise<{ ok: true } | { ok: false; reason: string }> {
    const { vmId, repositoryId, restorePointId } = before.point;
    const deadline = Date.now() + wait.timeoutMs;
    for (;;) {
      const now = await this.point(vmId, repositoryId, restorePointId);
      if (!now) return { ok: false, reason: `restore point ${restorePointId} was deleted while the restore was starting` };
      if (now.deleting) {
        if (Date.now() > deadline || wait.stop()) return { ok: false, reason: `restore point ${now.deleting} of the point's chain is still being deleted` };
        await new Promise((r) => setTimeout(r, wait.pollMs));
        continue;
      }
      const ids = (l: RestorePoint[]) => l.map((p) => p.restorePointId).join(' ');
      if (ids(now.lineage) !== ids(before.lineage)) return { ok: false, reason: `a restore point that restore point ${restorePointId} reads through was deleted while the restore was starting` };
      const marked = now.corrupt.find((id) => !before.corrupt.includes(id));
      if (marked) return { ok: false, reason: `restore point ${marked} of the point's chain was marked corrupt while the restore was starting` };
      return { ok: true };
    }
  }

  /** The absolute file each disk's export serves (its backing chain below it). */
  files(root: string, point: RestorePoint): { diskId: string; virtualSize: number; file: string; absolute: string }[] {
    return point.disks.map((d) => ({ diskId: d.diskId, virtualSize: d.virtualSize, file: d.file, absolute: join(root, d.file) }));
  }

  /**
   * The point's disks as a restore's check names them, each with what a qcow2 of it takes (`qemu-img measure`
   * through its chain: the data it reads and the tables for it, not the zeroes), which the agent holds against the
   * target's free space. A disk that cannot be measured goes without: the copy then finds out what it meets.
   */
  async sizedDisks(root: string, point: RestorePoint): Promise<RestoreCheckRequest['disks']> {
    return Promise.all(
      this.files(root, point).map(async (d) => {
        const measured = isChunkPointFile(d.absolute) ? measureChunkPoint(d.absolute) : measure({ file: d.absolute, format: 'qcow2' }, { outputFormat: 'qcow2' }).then((m) => m.required);
        const required = await measured.then((bytes) => bytes ?? undefined, () => undefined);
        return { diskId: d.diskId, virtualSize: d.virtualSize, digests: false, ...(required !== undefined ? { requiredBytes: required } : {}) };
      }),
    );
  }

  async configuration(root: string, point: RestorePoint): Promise<VmConfiguration | null> {
    return point.configuration ? readConfigurationFile(root, point.configuration) : null;
  }

  /** null when a point of the lineage was backed up without digests: nothing can vouch for its blocks. */
  async digests(vmId: string, repositoryId: string, restorePointId: string, diskId: string): Promise<BlockDigests | null> {
    const found = await this.point(vmId, repositoryId, restorePointId);
    if (!found) return null;
    let view: BlockDigests | null = null;
    for (const p of found.lineage) {
      const ref = p.disks.find((d) => d.diskId === diskId)?.digests;
      if (!ref) return null;
      const own = await readDigestFile(found.root, ref);
      view = view ? BlockDigests.union(view, own) : own;
    }
    return view;
  }
}
