import { IQueryHandler, QueryHandler } from '@nestjs/cqrs';
import { DataSource } from 'typeorm';
import { ActiveTokenQuery } from '../../src/auth/queries/active-token.query';
import { ApiTokenSummary, ListApiTokensQuery } from '../../src/auth/queries/list-api-tokens.query';
import type { Principal } from '../../src/eventing/request-context';
import { ApiTokenView } from './api-token.entity';

@QueryHandler(ListApiTokensQuery)
export class ListApiTokensHandler implements IQueryHandler<ListApiTokensQuery, ApiTokenSummary[]> {
  constructor(private readonly dataSource: DataSource) {}

  async execute(): Promise<ApiTokenSummary[]> {
    const rows = await this.dataSource.getRepository(ApiTokenView).find({ order: { issuedAt: 'ASC' } });
    return rows.map(({ tokenHash: _hash, ...rest }) => rest);
  }
}

@QueryHandler(ActiveTokenQuery)
export class ActiveTokenHandler implements IQueryHandler<ActiveTokenQuery, Principal | null> {
  constructor(private readonly dataSource: DataSource) {}

  async execute({ tokenHash }: ActiveTokenQuery): Promise<Principal | null> {
    const row = await this.dataSource.getRepository(ApiTokenView).findOneBy({ tokenHash, status: 'active' });
    return row ? { actor: row.name, role: row.role, tenantId: row.tenantId } : null;
  }
}
