import { AssignTenantHandler } from './commands/assign-tenant.handler';
import { TenantGuard, TenantScope } from '../http/owned';
import { TenancyController } from './tenancy.controller';

/** Tenants: agents and repositories given to one by an admin, and tokens confined to one. */
export const tenancyFeature = {
  controllers: [TenancyController],
  providers: [AssignTenantHandler, TenantGuard, TenantScope],
};
