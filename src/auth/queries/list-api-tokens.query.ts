import type { Role } from '../../eventing/roles';
import { Query } from '@nestjs/cqrs';

export interface ApiTokenSummary {
  tokenId: string;
  name: string;
  role: Role;
  tenantId: string | null;
  status: 'active' | 'revoked';
  issuedBy: string;
  issuedAt: Date;
  revokedAt: Date | null;
}

/** Every token ever issued (never its hash), oldest first. */
export class ListApiTokensQuery extends Query<ApiTokenSummary[]> {}
