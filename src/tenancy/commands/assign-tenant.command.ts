import { Appended, Command } from '../../eventing/command';
import type { TenantResource } from '../tenancy.events';

/** Gives an agent or a repository to a tenant (null: to none). */
export class AssignTenantCommand extends Command<Appended & { resource: TenantResource; id: string; tenantId: string | null }> {
  constructor(
    readonly resource: TenantResource,
    readonly id: string,
    readonly tenantId: string | null,
  ) {
    super();
  }
}
