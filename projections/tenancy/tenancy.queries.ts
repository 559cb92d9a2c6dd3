import { IQueryHandler, QueryHandler } from '@nestjs/cqrs';
import { DataSource } from 'typeorm';
import { OwnedKind, OwnerTenantQuery, TenantObjectsQuery } from '../../src/http/owner-tenant.query';

/**
 * Who owns what: an agent and a repository are given to a tenant (rm_tenancy); a VM is its agent's; a job, a
 * restore point, a mount, a restore and an export are their VM's; a policy is its repository's. Each statement
 * answers whether the object exists at all and its owner's tenant. Ids are compared as text, so a malformed one
 * finds nothing instead of failing a cast (the route's validation answers it afterwards).
 */
const OWNER_SQL: Record<OwnedKind, string> = {
  agent: `SELECT t.tenant_id FROM rm_agents a LEFT JOIN rm_tenancy t ON t.resource = 'agent' AND t.id = a.agent_id::text WHERE a.agent_id::text = $1`,
  repository: `SELECT t.tenant_id FROM rm_repositories r LEFT JOIN rm_tenancy t ON t.resource = 'repository' AND t.id = r.repository_id::text WHERE r.repository_id::text = $1`,
  vm: vmOwner(`SELECT $1::text AS vm_id WHERE EXISTS (SELECT 1 FROM rm_vms WHERE vm_id = $1)`),
  job: vmOwner(`SELECT vm_id FROM rm_backup_jobs WHERE job_id::text = $1`),
  point: vmOwner(`SELECT vm_id FROM rm_restore_points WHERE restore_point_id = $1`),
  mount: vmOwner(`SELECT vm_id FROM rm_restore_mounts WHERE mount_id::text = $1`),
  restore: vmOwner(`SELECT vm_id FROM rm_restores WHERE restore_id::text = $1`),
  export: vmOwner(`SELECT vm_id FROM rm_point_exports WHERE export_id::text = $1`),
  policy: `SELECT t.tenant_id FROM rm_policies p LEFT JOIN rm_tenancy t ON t.resource = 'repository' AND t.id = p.repository_id::text WHERE p.policy_id::text = $1`,
};

/** The tenant of the agent reporting the VM the inner query names (none when no agent reports it now). */
function vmOwner(inner: string): string {
  return `SELECT t.tenant_id FROM (${inner}) o
          LEFT JOIN rm_vms v ON v.vm_id = o.vm_id
          LEFT JOIN rm_tenancy t ON t.resource = 'agent' AND t.id = v.agent_id::text`;
}

@QueryHandler(OwnerTenantQuery)
export class OwnerTenantHandler implements IQueryHandler<OwnerTenantQuery, { exists: boolean; tenantId: string | null }> {
  constructor(private readonly dataSource: DataSource) {}

  async execute({ kind, id }: OwnerTenantQuery): Promise<{ exists: boolean; tenantId: string | null }> {
    const rows: { tenant_id: string | null }[] = await this.dataSource.query(`${OWNER_SQL[kind]} LIMIT 1`, [id]);
    return rows.length ? { exists: true, tenantId: rows[0].tenant_id } : { exists: false, tenantId: null };
  }
}

@QueryHandler(TenantObjectsQuery)
export class TenantObjectsHandler implements IQueryHandler<TenantObjectsQuery, { agentIds: Set<string>; vmIds: Set<string>; repositoryIds: Set<string> }> {
  constructor(private readonly dataSource: DataSource) {}

  async execute({ tenantId }: TenantObjectsQuery) {
    const owned: { resource: string; id: string }[] = await this.dataSource.query(`SELECT resource, id FROM rm_tenancy WHERE tenant_id = $1`, [tenantId]);
    const agentIds = new Set(owned.filter((o) => o.resource === 'agent').map((o) => o.id));
    const repositoryIds = new Set(owned.filter((o) => o.resource === 'repository').map((o) => o.id));
    const vms: { vm_id: string }[] = agentIds.size ? await this.dataSource.query(`SELECT vm_id FROM rm_vms WHERE agent_id::text = ANY($1::text[])`, [[...agentIds]]) : [];
    return { agentIds, vmIds: new Set(vms.map((v) => v.vm_id)), repositoryIds };
  }
}
