import { Query } from '@nestjs/cqrs';

/** What a tenant's token may name by id; `stream` is an event stream, owned as what it records is. */
export type OwnedKind = 'agent' | 'vm' | 'repository' | 'job' | 'point' | 'mount' | 'restore' | 'export' | 'policy';

/** Whether the object exists, and the tenant it belongs to (null: none). */
export class OwnerTenantQuery extends Query<{ exists: boolean; tenantId: string | null }> {
  constructor(
    readonly kind: OwnedKind,
    readonly id: string,
  ) {
    super();
  }
}

/** Everything a tenant owns directly: its agents, the VMs they report, its repositories. */
export class TenantObjectsQuery extends Query<{ agentIds: Set<string>; vmIds: Set<string>; repositoryIds: Set<string> }> {
  constructor(readonly tenantId: string) {
    super();
  }
}
