import { IQueryHandler, QueryHandler } from '@nestjs/cqrs';
import { DataSource } from 'typeorm';
import { DomainError } from '../../src/eventing/domain-error';
import { GetRemoteQuery, ListRemotesQuery, RemoteNameTakenQuery, RemoteRecord } from '../../src/sync/queries/remotes.query';

const COLUMNS = `remote_id AS "remoteId", name, url, host, port, fingerprint, hub_instance AS "hubInstance", registered_at AS "registeredAt"`;

@QueryHandler(ListRemotesQuery)
export class ListRemotesHandler implements IQueryHandler<ListRemotesQuery, RemoteRecord[]> {
  constructor(private readonly dataSource: DataSource) {}

  execute(): Promise<RemoteRecord[]> {
    return this.dataSource.query(`SELECT ${COLUMNS} FROM rm_remotes ORDER BY registered_at, name`);
  }
}

@QueryHandler(GetRemoteQuery)
export class GetRemoteHandler implements IQueryHandler<GetRemoteQuery, RemoteRecord> {
  constructor(private readonly dataSource: DataSource) {}

  async execute({ remoteId }: GetRemoteQuery): Promise<RemoteRecord> {
    const [row] = await this.dataSource.query(`SELECT ${COLUMNS} FROM rm_remotes WHERE remote_id::text = $1`, [remoteId]);
    if (!row) throw new DomainError('not_found', `remote ${remoteId} does not exist`);
    return row;
  }
}

@QueryHandler(RemoteNameTakenQuery)
export class RemoteNameTakenHandler implements IQueryHandler<RemoteNameTakenQuery, boolean> {
  constructor(private readonly dataSource: DataSource) {}

  async execute({ name }: RemoteNameTakenQuery): Promise<boolean> {
    return (await this.dataSource.query(`SELECT 1 FROM rm_remotes WHERE name = $1`, [name])).length > 0;
  }
}
