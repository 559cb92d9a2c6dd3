import { Injectable } from '@nestjs/common';
import { join } from 'node:path';
import { readConfigurationFile } from '../../repositories/qcow2/configuration-files';
import { readDigestFile } from '../../repositories/qcow2/digest-files';
import { RepositoriesService } from '../../repositories/registry/repositories.service';
import { pointOf } from '../../restore-points/chain.aggregate';
import { RestorePoint } from '../../restore-points/chain.events';
import { RestorePointsService } from '../../restore-points/restore-points.service';
import { BlockDigests } from '../../wire/block-digests';
import type { VmConfiguration } from '../../wire/vm-configuration';

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

  /** `deleting`: a point of the lineage (the point or one it reads through) whose delete is rewriting the chain's files now. */
  async point(vmId: string, repositoryId: string, restorePointId: string): Promise<{ point: RestorePoint; lineage: RestorePoint[]; root: string; deleting: string | null } | null> {
    const chain = await this.points.chain(vmId, repositoryId);
    const point = pointOf(chain, restorePointId);
    if (!point) return null;
    const lineage: RestorePoint[] = [];
    for (let p: RestorePoint | undefined = point; p; p = p.parentId ? pointOf(chain, p.parentId) : undefined) lineage.unshift(p);
    const deleting = chain.pending && lineage.some((p) => p.restorePointId === chain.pending!.restorePointId) ? chain.pending.restorePointId : null;
    return { point, lineage, root: (await this.repositories.definition(repositoryId)).root, deleting };
  }

  /** The absolute file each disk's export serves (its backing chain below it). */
  files(root: string, point: RestorePoint): { diskId: string; virtualSize: number; file: string; absolute: string }[] {
    return point.disks.map((d) => ({ diskId: d.diskId, virtualSize: d.virtualSize, file: d.file, absolute: join(root, d.file) }));
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
