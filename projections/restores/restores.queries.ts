import { IQueryHandler, QueryHandler } from '@nestjs/cqrs';
import { DataSource, In } from 'typeorm';
import { DomainError } from '../../src/eventing/domain-error';
import { GetRestoreQuery } from '../../src/vm-restore/queries/get-restore.query';
import { ListRestoresQuery } from '../../src/vm-restore/queries/list-restores.query';
import { RestoreRecord } from '../../src/vm-restore/queries/restore.record';
import { RestoreView } from './restore.entity';

@QueryHandler(GetRestoreQuery)
export class GetRestoreHandler implements IQueryHandler<GetRestoreQuery, RestoreRecord> {
  constructor(private readonly dataSource: DataSource) {}

  async execute({ restoreId }: GetRestoreQuery): Promise<RestoreRecord> {
    const view = await this.dataSource.getRepository(RestoreView).findOneBy({ restoreId });
    if (!view) throw new DomainError('not_found', `restore ${restoreId} does not exist`);
    return view;
  }
}

@QueryHandler(ListRestoresQuery)
export class ListRestoresHandler implements IQueryHandler<ListRestoresQuery, RestoreRecord[]> {
  constructor(private readonly dataSource: DataSource) {}

  execute({ filter }: ListRestoresQuery): Promise<RestoreRecord[]> {
    return this.dataSource.getRepository(RestoreView).find({
      where: { ...(filter.vmId ? { vmId: filter.vmId } : {}), ...(filter.unfinished ? { status: In(['running']) } : {}) },
      order: { requestedAt: 'DESC', restoreId: 'DESC' },
      take: filter.limit ?? 100,
    });
  }
}
