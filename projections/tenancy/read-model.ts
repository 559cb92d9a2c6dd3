import { ReadModel } from '../read-model';
import { OwnerTenantHandler, TenantObjectsHandler } from './tenancy.queries';
import { TenancyProjector } from './tenancy.projector';

export const tenancyReadModel: ReadModel = {
  projector: TenancyProjector,
  queryHandlers: [OwnerTenantHandler, TenantObjectsHandler],
};
