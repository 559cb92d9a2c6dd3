import { IQueryHandler, QueryHandler } from '@nestjs/cqrs';
import { DataSource, LessThanOrEqual, Not } from 'typeorm';
import { DomainError } from '../../src/eventing/domain-error';
import { ProjectionsService } from '../../src/projection-runner/projections.service';
import { CountRestorePointsQuery } from '../../src/repositories/queries/count-restore-points.query';
import { GetRestorePointQuery } from '../../src/restore-points/queries/get-restore-point.query';
import { ListRestorePointsQuery } from '../../src/restore-points/queries/list-restore-points.query';
import { RestorePointRecord } from '../../src/restore-points/queries/restore-point.record';
import { RepositoryRestorePointsQuery } from '../../src/restore-points/queries/repository-restore-points.query';
import { RecycleBinQuery } from '../../src/restore-points/queries/recycle-bin.query';
import { RestorePointsBeingDeletedQuery } from '../../src/restore-points/queries/restore-points-being-deleted.query';
import { SyncedInRunQuery } from '../../src/restore-points/queries/synced-in-run.query';
import { KnownBaseQuery } from '../../src/backups/queries/known-base.query';
import { RestorePointView } from './restore-point.entity';

@QueryHandler(GetRestorePointQuery)
export class GetRestorePointHandler implements IQueryHandler<GetRestorePointQuery, RestorePointRecord> {
  constructor(private readonly dataSource: DataSource) {}

  async execute({ restorePointId }: GetRestorePointQuery): Promise<RestorePointRecord> {
    const view = await this.dataSource.getRepository(RestorePointView).findOneBy({ restorePointId });
    if (!view) throw new DomainError('not_found', `restore point ${restorePointId} does not exist`);
    return view;
  }
}

@QueryHandler(ListRestorePointsQuery)
export class ListRestorePointsHandler implements IQueryHandler<ListRestorePointsQuery, RestorePointRecord[]> {
  constructor(private readonly dataSource: DataSource) {}

  execute({ vmId, repositoryId }: ListRestorePointsQuery): Promise<RestorePointRecord[]> {
    // a recycled point is deleted as far as the VM's points go: the recycle bin lists it
    return this.dataSource.getRepository(RestorePointView).find({ where: { vmId, status: Not('recycled'), ...(repositoryId ? { repositoryId } : {}) }, order: { chainPosition: 'ASC' } });
  }
}

@QueryHandler(KnownBaseQuery)
export class KnownBaseHandler implements IQueryHandler<KnownBaseQuery, { restorePointId: string; file: string } | null> {
  constructor(private readonly dataSource: DataSource) {}

  async execute({ repositoryId, agentId, vmId, diskId, virtualSize }: KnownBaseQuery): Promise<{ restorePointId: string; file: string } | null> {
    // a point a verify found damaged, or that reads damaged blocks, would lend its damage to every block not sent
    const rows: { restore_point_id: string; file: string }[] = await this.dataSource.query(
      `SELECT p.restore_point_id, d->>'file' AS file
         FROM rm_restore_points p
         JOIN rm_vms v ON v.vm_id = p.vm_id
         CROSS JOIN LATERAL jsonb_array_elements(p.disks) d
        WHERE p.repository_id::text = $1 AND v.agent_id::text = $2 AND p.status = 'available'
          AND p.integrity <> 'corrupt' AND p.verify_ok IS NOT FALSE AND p.damaged = '[]'::jsonb
          AND (d->>'virtualSize')::bigint = $5
        ORDER BY (p.vm_id = $3 AND d->>'diskId' = $4) DESC, p.created_at DESC
        LIMIT 1`,
      [repositoryId, agentId, vmId, diskId, virtualSize],
    );
    return rows.length ? { restorePointId: rows[0].restore_point_id, file: rows[0].file } : null;
  }
}

@QueryHandler(SyncedInRunQuery)
export class SyncedInRunHandler implements IQueryHandler<SyncedInRunQuery, { restorePointId: string; bytesReceived: number }[]> {
  constructor(private readonly dataSource: DataSource) {}

  async execute({ runId }: SyncedInRunQuery): Promise<{ restorePointId: string; bytesReceived: number }[]> {
    const rows: { restore_point_id: string; bytes: string | null }[] = await this.dataSource.query(
      `SELECT restore_point_id, source->>'bytesReceived' AS bytes FROM rm_restore_points WHERE source->>'runId' = $1 ORDER BY created_at, restore_point_id`,
      [runId],
    );
    return rows.map((r) => ({ restorePointId: r.restore_point_id, bytesReceived: Number(r.bytes ?? 0) }));
  }
}

@QueryHandler(RecycleBinQuery)
export class RecycleBinHandler implements IQueryHandler<RecycleBinQuery, RestorePointRecord[]> {
  constructor(private readonly dataSource: DataSource) {}

  execute({ dueBy }: RecycleBinQuery): Promise<RestorePointRecord[]> {
    return this.dataSource.getRepository(RestorePointView).find({ where: { status: 'recycled', ...(dueBy ? { purgeAfter: LessThanOrEqual(dueBy) } : {}) }, order: { purgeAfter: 'ASC', chainPosition: 'ASC' } });
  }
}

@QueryHandler(RestorePointsBeingDeletedQuery)
export class RestorePointsBeingDeletedHandler implements IQueryHandler<RestorePointsBeingDeletedQuery, RestorePointRecord[]> {
  constructor(private readonly dataSource: DataSource) {}

  execute(): Promise<RestorePointRecord[]> {
    return this.dataSource.getRepository(RestorePointView).findBy({ status: 'deleting' });
  }
}

/** Waits for the read model to catch up first: a point added a moment ago must count. */
@QueryHandler(CountRestorePointsQuery)
export class CountRestorePointsHandler implements IQueryHandler<CountRestorePointsQuery, number> {
  constructor(
    private readonly dataSource: DataSource,
    private readonly projections: ProjectionsService,
  ) {}

  async execute({ repositoryId }: CountRestorePointsQuery): Promise<number> {
    await this.projections.waitForCaughtUp('restore-points');
    return this.dataSource.getRepository(RestorePointView).countBy({ repositoryId });
  }
}

@QueryHandler(RepositoryRestorePointsQuery)
export class RepositoryRestorePointsHandler implements IQueryHandler<RepositoryRestorePointsQuery, RestorePointRecord[]> {
  constructor(
    private readonly dataSource: DataSource,
    private readonly projections: ProjectionsService,
  ) {}

  async execute({ repositoryId }: RepositoryRestorePointsQuery): Promise<RestorePointRecord[]> {
    await this.projections.waitForCaughtUp('restore-points');
    return this.dataSource.getRepository(RestorePointView).find({ where: { repositoryId }, order: { vmId: 'ASC', chainPosition: 'ASC' } });
  }
}
