import { IQueryHandler, QueryHandler } from '@nestjs/cqrs';
import { DataSource, In } from 'typeorm';
import { DomainError } from '../../src/eventing/domain-error';
import { ProjectionsService } from '../../src/projection-runner/projections.service';
import { LiveMounts } from '../../src/restore/live-mounts';
import { MountIntegrity, mountIntegrity } from '../../src/restore/mount-integrity';
import { ActiveRestoreMountsQuery, OthersRestoreMountsQuery } from '../../src/restore/queries/active-restore-mounts.query';
import { GetRestoreMountQuery } from '../../src/restore/queries/get-restore-mount.query';
import { ListRestoreMountsQuery } from '../../src/restore/queries/list-restore-mounts.query';
import { MountIntegrityQuery } from '../../src/restore/queries/mount-integrity.query';
import { MountReadingFiles, MountReadingFilesQuery } from '../../src/restore/queries/mount-reading-files.query';
import { RestoreMountDescription } from '../../src/restore/queries/restore-mount-description';
import { RestoreMountSource, RestoreMountSourceQuery } from '../../src/restore/queries/restore-mount-source.query';
import { SettledRestoreMountQuery } from '../../src/restore/queries/settled-restore-mount.query';
import { RestoreMountView } from './restore-mount.entity';
import { RestorePointIntegrityView } from './restore-point-integrity.entity';

/** How long a request waits for the read model to show the outcome the workflow already recorded. */
const OUTCOME_LAG_MS = 10_000;
const READ_MODEL = 'restore-mounts';

/**
 * The integrity rows of these points once the read model has applied every chain event recorded
 * so far: a point found corrupt a moment ago shows corrupt on the next answer.
 */
async function integrityRows(dataSource: DataSource, projections: ProjectionsService, restorePointIds: string[]): Promise<Map<string, RestorePointIntegrityView>> {
  await projections.waitForCaughtUp(READ_MODEL);
  if (!restorePointIds.length) return new Map();
  const rows = await dataSource.getRepository(RestorePointIntegrityView).findBy({ restorePointId: In([...new Set(restorePointIds)]) });
  return new Map(rows.map((r) => [r.restorePointId, r]));
}

function integrityOfMount(v: RestoreMountView, rows: Map<string, RestorePointIntegrityView>): MountIntegrity {
  return mountIntegrity(rows.get(v.restorePointId) ?? null, v.diskId);
}

/** While this process holds a ready mount, its expiry moves with every access; the read model's is throttled. */
function describe(v: RestoreMountView, live: LiveMounts, integrity: MountIntegrity): RestoreMountDescription {
  const access = v.status === 'ready' ? live.liveAccess(v.mountId) : null;
  return {
    mountId: v.mountId,
    status: v.status,
    restorePointId: v.restorePointId,
    vmId: v.vmId,
    repositoryId: v.repositoryId,
    diskId: v.diskId,
    partitionTable: v.partitionTable,
    diskSize: v.diskSize,
    volumes: v.volumes.map((vol) => ({
      id: vol.id,
      fsType: vol.fsType,
      size: vol.size,
      label: vol.label,
      status: vol.status,
      reason: vol.reason,
      start: vol.start,
      partitionType: vol.partitionType,
      partitionName: vol.partitionName,
      uuid: vol.uuid,
    })),
    error: v.error,
    releaseReason: v.releaseReason,
    releaseDetail: v.releaseDetail,
    requestedBy: v.requestedBy,
    requestedAt: v.requestedAt,
    readyAt: v.readyAt,
    endedAt: v.endedAt,
    idleTimeoutSeconds: v.idleTimeoutSeconds,
    lastAccessAt: access?.lastAccessAt ?? v.lastAccessAt,
    expiresAt: access?.expiresAt ?? v.expiresAt,
    downloads: { files: v.fileDownloads, archives: v.archiveDownloads, bytes: v.bytesDownloaded },
    ...integrity,
  };
}

async function viewOf(dataSource: DataSource, mountId: string): Promise<RestoreMountView> {
  const view = await dataSource.getRepository(RestoreMountView).findOneBy({ mountId });
  if (!view) throw new DomainError('not_found', `restore mount ${mountId} does not exist`);
  return view;
}

@QueryHandler(GetRestoreMountQuery)
export class GetRestoreMountHandler implements IQueryHandler<GetRestoreMountQuery, RestoreMountDescription> {
  constructor(
    private readonly dataSource: DataSource,
    private readonly live: LiveMounts,
    private readonly projections: ProjectionsService,
  ) {}

  async execute({ mountId }: GetRestoreMountQuery): Promise<RestoreMountDescription> {
    const view = await viewOf(this.dataSource, mountId);
    return describe(view, this.live, integrityOfMount(view, await integrityRows(this.dataSource, this.projections, [view.restorePointId])));
  }
}

@QueryHandler(ListRestoreMountsQuery)
export class ListRestoreMountsHandler implements IQueryHandler<ListRestoreMountsQuery, RestoreMountDescription[]> {
  constructor(
    private readonly dataSource: DataSource,
    private readonly live: LiveMounts,
    private readonly projections: ProjectionsService,
  ) {}

  async execute({ filter }: ListRestoreMountsQuery): Promise<RestoreMountDescription[]> {
    const views = await this.dataSource.getRepository(RestoreMountView).find({
      where: { ...(filter.status ? { status: filter.status } : {}), ...(filter.restorePointId ? { restorePointId: filter.restorePointId } : {}) },
      order: { requestedAt: 'DESC' },
    });
    const rows = await integrityRows(this.dataSource, this.projections, views.map((v) => v.restorePointId));
    return views.map((v) => describe(v, this.live, integrityOfMount(v, rows)));
  }
}

/**
 * Settled: mounted or failed, or released and no longer held by this process (its take-down
 * finished). The workflow works on the mount while this process holds it; once it lets go,
 * what it recorded reaches the read model within moments.
 */
@QueryHandler(SettledRestoreMountQuery)
export class SettledRestoreMountHandler implements IQueryHandler<SettledRestoreMountQuery, RestoreMountDescription> {
  constructor(
    private readonly dataSource: DataSource,
    private readonly live: LiveMounts,
    private readonly projections: ProjectionsService,
  ) {}

  async execute({ mountId, refuseFailed }: SettledRestoreMountQuery): Promise<RestoreMountDescription> {
    let view = await viewOf(this.dataSource, mountId);
    for (let letGo: number | null = null; ; view = await viewOf(this.dataSource, mountId)) {
      const held = this.live.holds(mountId);
      if (view.status === 'ready' || (view.status !== 'mounting' && !held)) break;
      if (!held) letGo ??= Date.now();
      if (letGo !== null && Date.now() - letGo > OUTCOME_LAG_MS) break;
      await new Promise((r) => setTimeout(r, 10));
    }
    if (refuseFailed && view.status === 'failed') {
      throw new DomainError('conflict', `restore point ${view.restorePointId} disk ${view.diskId} could not be mounted (restore mount ${mountId}): ${view.error}`);
    }
    return describe(view, this.live, integrityOfMount(view, await integrityRows(this.dataSource, this.projections, [view.restorePointId])));
  }
}

@QueryHandler(MountIntegrityQuery)
export class MountIntegrityHandler implements IQueryHandler<MountIntegrityQuery, MountIntegrity> {
  constructor(
    private readonly dataSource: DataSource,
    private readonly projections: ProjectionsService,
  ) {}

  async execute({ restorePointId, diskId }: MountIntegrityQuery): Promise<MountIntegrity> {
    return mountIntegrity((await integrityRows(this.dataSource, this.projections, [restorePointId])).get(restorePointId) ?? null, diskId);
  }
}

@QueryHandler(ActiveRestoreMountsQuery)
export class ActiveRestoreMountsHandler implements IQueryHandler<ActiveRestoreMountsQuery, string[]> {
  constructor(private readonly dataSource: DataSource) {}

  async execute({ hubInstance }: ActiveRestoreMountsQuery): Promise<string[]> {
    const rows: { mount_id: string }[] = await this.dataSource.query(`SELECT mount_id FROM rm_restore_mounts WHERE status IN ('mounting', 'ready') AND hub_instance = $1`, [hubInstance]);
    return rows.map((r) => r.mount_id);
  }
}

@QueryHandler(OthersRestoreMountsQuery)
export class OthersRestoreMountsHandler implements IQueryHandler<OthersRestoreMountsQuery, { mountId: string; hubInstance: string }[]> {
  constructor(private readonly dataSource: DataSource) {}

  async execute({ hubInstance }: OthersRestoreMountsQuery): Promise<{ mountId: string; hubInstance: string }[]> {
    const rows: { mount_id: string; hub_instance: string }[] = await this.dataSource.query(`SELECT mount_id, hub_instance FROM rm_restore_mounts WHERE status IN ('mounting', 'ready') AND hub_instance <> $1`, [hubInstance]);
    return rows.map((r) => ({ mountId: r.mount_id, hubInstance: r.hub_instance }));
  }
}

@QueryHandler(MountReadingFilesQuery)
export class MountReadingFilesHandler implements IQueryHandler<MountReadingFilesQuery, MountReadingFiles | null> {
  constructor(private readonly dataSource: DataSource) {}

  async execute({ files }: MountReadingFilesQuery): Promise<MountReadingFiles | null> {
    const rows: { mount_id: string; restore_point_id: string; disk_id: string }[] = await this.dataSource.query(
      `SELECT mount_id, restore_point_id, disk_id FROM rm_restore_mounts WHERE status IN ('mounting', 'ready') AND chain_files && $1::text[] LIMIT 1`,
      [files],
    );
    return rows.length ? { mountId: rows[0].mount_id, restorePointId: rows[0].restore_point_id, diskId: rows[0].disk_id } : null;
  }
}

/**
 * Reads the restore-points and repositories read models: a mount needs the point, the files
 * of each of its disks down the backing chain (parent links), and where the repository is.
 */
@QueryHandler(RestoreMountSourceQuery)
export class RestoreMountSourceHandler implements IQueryHandler<RestoreMountSourceQuery, RestoreMountSource> {
  constructor(private readonly dataSource: DataSource) {}

  async execute({ restorePointId }: RestoreMountSourceQuery): Promise<RestoreMountSource> {
    const chain: { vm_id: string; repository_id: string; status: 'available' | 'deleting' | 'recycled'; disks: { diskId: string; file: string }[] }[] = await this.dataSource.query(
      `WITH RECURSIVE chain AS (
         SELECT restore_point_id, parent_id, vm_id, repository_id, status, disks, 0 AS depth FROM rm_restore_points WHERE restore_point_id = $1
         UNION ALL
         SELECT p.restore_point_id, p.parent_id, p.vm_id, p.repository_id, p.status, p.disks, c.depth + 1
           FROM rm_restore_points p JOIN chain c ON p.restore_point_id = c.parent_id AND p.vm_id = c.vm_id AND p.repository_id = c.repository_id
          WHERE c.depth < 10000
       )
       SELECT vm_id, repository_id, status, disks FROM chain ORDER BY depth`,
      [restorePointId],
    );
    if (!chain.length) throw new DomainError('not_found', `restore point ${restorePointId} does not exist`);
    const [point] = chain;
    const repository: { root: string }[] = await this.dataSource.query(`SELECT root FROM rm_repositories WHERE repository_id = $1 AND status = 'active'`, [point.repository_id]);
    if (!repository.length) throw new DomainError('not_found', `repository ${point.repository_id} does not exist`);
    return {
      restorePointId,
      vmId: point.vm_id,
      repositoryId: point.repository_id,
      status: point.status,
      root: repository[0].root,
      disks: point.disks.map((disk) => ({
        diskId: disk.diskId,
        files: chain.map((p) => p.disks.find((d) => d.diskId === disk.diskId)?.file).filter((f): f is string => !!f),
      })),
    };
  }
}
