import { IQueryHandler, QueryHandler } from '@nestjs/cqrs';
import { DataSource, Not } from 'typeorm';
import { exportUri } from '../../src/disk-images/point-export.aggregate';
import { GetPointExportQuery, ListPointExportsQuery, OpenPointExportsByQuery, OpenPointExportsQuery, OthersOpenPointExportsQuery, PointExportRecord } from '../../src/disk-images/queries/point-exports.query';
import { DomainError } from '../../src/eventing/domain-error';
import { PointExportView } from './point-export.entity';

function record(v: PointExportView): PointExportRecord {
  return {
    exportId: v.exportId,
    restorePointId: v.restorePointId,
    vmId: v.vmId,
    repositoryId: v.repositoryId,
    status: v.status,
    tls: v.tls,
    disks: v.disks.map((d) => ({ diskId: d.diskId, host: d.host, port: d.port, exportName: d.exportName, uri: exportUri(d.host, d.port, d.exportName, v.tls), tls: v.tls })),
    openedAt: v.openedAt,
    openedBy: v.openedBy,
    closedAt: v.closedAt,
    closeReason: v.closeReason,
    closeDetail: v.closeDetail,
  };
}

@QueryHandler(ListPointExportsQuery)
export class ListPointExportsHandler implements IQueryHandler<ListPointExportsQuery, PointExportRecord[]> {
  constructor(private readonly dataSource: DataSource) {}

  async execute({ restorePointId }: ListPointExportsQuery): Promise<PointExportRecord[]> {
    const [point] = await this.dataSource.query(`SELECT 1 FROM rm_restore_points WHERE restore_point_id = $1`, [restorePointId]);
    if (!point) throw new DomainError('not_found', `restore point ${restorePointId} does not exist`);
    const rows = await this.dataSource.getRepository(PointExportView).find({ where: { restorePointId }, order: { openedAt: 'DESC' } });
    return rows.map(record);
  }
}

@QueryHandler(GetPointExportQuery)
export class GetPointExportHandler implements IQueryHandler<GetPointExportQuery, PointExportRecord> {
  constructor(private readonly dataSource: DataSource) {}

  async execute({ exportId }: GetPointExportQuery): Promise<PointExportRecord> {
    const row = await this.dataSource.getRepository(PointExportView).findOneBy({ exportId });
    if (!row) throw new DomainError('not_found', `restore point export ${exportId} does not exist`);
    return record(row);
  }
}

@QueryHandler(OpenPointExportsQuery)
export class OpenPointExportsHandler implements IQueryHandler<OpenPointExportsQuery, { exportId: string; leaseIds: string[] }[]> {
  constructor(private readonly dataSource: DataSource) {}

  async execute({ hubInstance }: OpenPointExportsQuery): Promise<{ exportId: string; leaseIds: string[] }[]> {
    const rows = await this.dataSource.getRepository(PointExportView).find({ where: { hubInstance, status: 'open' }, order: { openedAt: 'ASC' } });
    return rows.map((r) => ({ exportId: r.exportId, leaseIds: r.disks.map((d) => d.leaseId) }));
  }
}

@QueryHandler(OthersOpenPointExportsQuery)
export class OthersOpenPointExportsHandler implements IQueryHandler<OthersOpenPointExportsQuery, { exportId: string; hubInstance: string; leaseIds: string[] }[]> {
  constructor(private readonly dataSource: DataSource) {}

  async execute({ hubInstance }: OthersOpenPointExportsQuery): Promise<{ exportId: string; hubInstance: string; leaseIds: string[] }[]> {
    const rows = await this.dataSource.getRepository(PointExportView).find({ where: { hubInstance: Not(hubInstance), status: 'open' }, order: { openedAt: 'ASC' } });
    return rows.map((r) => ({ exportId: r.exportId, hubInstance: r.hubInstance, leaseIds: r.disks.map((d) => d.leaseId) }));
  }
}

@QueryHandler(OpenPointExportsByQuery)
export class OpenPointExportsByHandler implements IQueryHandler<OpenPointExportsByQuery, number> {
  constructor(private readonly dataSource: DataSource) {}

  async execute({ actor }: OpenPointExportsByQuery): Promise<number> {
    return this.dataSource.getRepository(PointExportView).count({ where: { openedBy: actor, status: 'open' } });
  }
}
