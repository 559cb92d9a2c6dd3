import { IQueryHandler, QueryHandler } from '@nestjs/cqrs';
import { DataSource } from 'typeorm';
import { ActiveTokenNameQuery } from '../../src/auth/queries/active-token-name.query';
import { ApiTokenSummary, ListApiTokensQuery } from '../../src/auth/queries/list-api-tokens.query';
import { ApiTokenView } from './api-token.entity';

@QueryHandler(ListApiTokensQuery)
export class ListApiTokensHandler implements IQueryHandler<ListApiTokensQuery, ApiTokenSummary[]> {
  constructor(private readonly dataSource: DataSource) {}

  async execute(): Promise<ApiTokenSummary[]> {
    const rows = await this.dataSource.getRepository(ApiTokenView).find({ order: { issuedAt: 'ASC' } });
    return rows.map(({ tokenHash: _hash, ...rest }) => rest);
  }
}

@QueryHandler(ActiveTokenNameQuery)
export class ActiveTokenNameHandler implements IQueryHandler<ActiveTokenNameQuery, string | null> {
  constructor(private readonly dataSource: DataSource) {}

  async execute({ tokenHash }: ActiveTokenNameQuery): Promise<string | null> {
    const row = await this.dataSource.getRepository(ApiTokenView).findOneBy({ tokenHash, status: 'active' });
    return row ? row.name : null;
  }
}
