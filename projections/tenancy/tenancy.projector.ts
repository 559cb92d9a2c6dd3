import { Injectable } from '@nestjs/common';
import { EntityManager } from 'typeorm';
import { RecordedEvent } from '../../src/event-store/event-store.port';
import { Projector } from '../../src/projection-runner/projector';
import { TENANT_ASSIGNED, TenantAssigned } from '../../src/tenancy/tenancy.events';
import { TenancyView } from './tenancy.entity';

@Injectable()
export class TenancyProjector implements Projector {
  readonly name = 'tenancy';
  readonly filter = { eventTypes: [TENANT_ASSIGNED] };
  readonly tables = ['rm_tenancy'];

  async apply(event: RecordedEvent, manager: EntityManager): Promise<void> {
    const { resource, id, tenantId } = event.data as TenantAssigned['data'];
    const rows = manager.getRepository(TenancyView);
    if (tenantId === null) await rows.delete({ resource, id });
    else await rows.upsert({ resource, id, tenantId }, ['resource', 'id']);
  }
}
