import { Injectable } from '@nestjs/common';
import { EntityManager } from 'typeorm';
import { RecordedEvent } from '../../src/event-store/event-store.port';
import { Projector } from '../../src/projection-runner/projector';
import { POLICY_CREATED, POLICY_DELETED, POLICY_UPDATED, PolicyCreated, PolicyUpdated } from '../../src/policies/policy.events';
import { SLOT_FIRED, SLOT_MISSED, SLOT_SKIPPED, SlotFired, SlotMissed, SlotSkipped } from '../../src/policies/policy-slots.events';
import { PolicyView } from './policy.entity';

@Injectable()
export class PoliciesProjector implements Projector {
  readonly name = 'policies';
  readonly filter = { eventTypes: [POLICY_CREATED, POLICY_UPDATED, POLICY_DELETED, SLOT_FIRED, SLOT_SKIPPED, SLOT_MISSED] };
  readonly tables = ['rm_policies'];

  async apply(event: RecordedEvent, manager: EntityManager): Promise<void> {
    const policies = manager.getRepository(PolicyView);
    switch (event.type) {
      case POLICY_CREATED: {
        const { policyId, createdAt: _at, ...d } = event.data as unknown as PolicyCreated['data'];
        await policies.insert({ policyId, ...d, drill: d.drill ?? null, createdAt: event.createdAt, updatedAt: event.createdAt, lastSlot: null });
        return;
      }
      case POLICY_UPDATED: {
        const { policyId, updatedAt: _at, ...d } = event.data as unknown as PolicyUpdated['data'];
        await policies.update({ policyId }, { ...d, drill: d.drill ?? null, updatedAt: event.createdAt });
        return;
      }
      case POLICY_DELETED:
        await policies.delete({ policyId: (event.data as { policyId: string }).policyId });
        return;
      case SLOT_FIRED:
      case SLOT_SKIPPED:
      case SLOT_MISSED: {
        const d = event.data as (SlotFired | SlotSkipped | SlotMissed)['data'];
        if ('manual' in d && d.manual) return;
        await manager.query(`UPDATE rm_policies SET last_slot = $2 WHERE policy_id = $1 AND (last_slot IS NULL OR last_slot < $2)`, [d.policyId, d.slot]);
        return;
      }
    }
  }
}
