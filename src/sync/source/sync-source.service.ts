import { Injectable } from '@nestjs/common';
import { QueryBus } from '@nestjs/cqrs';
import { readFile } from 'node:fs/promises';
import { join } from 'node:path';
import { DomainError } from '../../eventing/domain-error';
import { ActiveRepositoriesQuery } from '../../repositories/queries/active-repositories.query';
import { RepositoriesService } from '../../repositories/registry/repositories.service';
import { GetRestorePointQuery } from '../../restore-points/queries/get-restore-point.query';
import { RepositoryRestorePointsQuery } from '../../restore-points/queries/repository-restore-points.query';
import { RestorePointRecord } from '../../restore-points/queries/restore-point.record';
import type { SyncPointList } from '../sync-protocol';

/**
 * What a hub pulling restore points reads here: the points of one repository in chain order, and the small
 * files beside each (digests, configuration). Disks are read through point exports (src/disk-images).
 */
@Injectable()
export class SyncSourceService {
  constructor(
    private readonly queries: QueryBus,
    private readonly repositories: RepositoriesService,
  ) {}

  async points(repositoryId: string | undefined): Promise<SyncPointList> {
    const id = repositoryId ?? (await this.onlyRepository());
    const records = await this.queries.execute(new RepositoryRestorePointsQuery(id));
    // a point being deleted may be gone before its disks are read; it is offered again if its delete steps back
    return { repositoryId: id, points: records.filter((p) => p.status === 'available').map(toSyncPoint) };
  }

  async digests(restorePointId: string, diskId: string): Promise<Buffer> {
    const point = await this.queries.execute(new GetRestorePointQuery(restorePointId));
    const disk = point.disks.find((d) => d.diskId === diskId);
    if (!disk) throw new DomainError('not_found', `restore point ${restorePointId} has no disk ${diskId}`);
    if (!disk.digests) throw new DomainError('not_found', `disk ${diskId} of restore point ${restorePointId} has no digests`);
    return readFile(join((await this.repositories.definition(point.repositoryId)).root, disk.digests.file));
  }

  async configuration(restorePointId: string): Promise<Buffer> {
    const point = await this.queries.execute(new GetRestorePointQuery(restorePointId));
    if (!point.configuration) throw new DomainError('not_found', `restore point ${restorePointId} holds no configuration`);
    return readFile(join((await this.repositories.definition(point.repositoryId)).root, point.configuration.file));
  }

  private async onlyRepository(): Promise<string> {
    const active = await this.queries.execute(new ActiveRepositoriesQuery());
    if (active.length === 1) return active[0].repositoryId;
    throw new DomainError('invalid', `this hub has ${active.length} repositories (${active.map((r) => r.repositoryId).join(', ') || 'none'}): name one in repositoryId`);
  }
}

function toSyncPoint(p: RestorePointRecord): SyncPointList['points'][number] {
  return {
    restorePointId: p.restorePointId,
    vmId: p.vmId,
    backupId: p.backupId,
    type: p.type,
    parentId: p.parentId,
    createdAt: p.createdAt.toISOString(),
    disks: p.disks,
    consistency: p.consistency,
    consistencyReason: p.consistencyReason,
    freezeMs: p.freezeMs,
    configuration: p.configuration,
    integrity: p.integrity,
    disksLeftOut: p.disksLeftOut,
  };
}
