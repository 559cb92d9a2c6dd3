import { Aggregate } from '../eventing/aggregate';
import { DomainError } from '../eventing/domain-error';
import { TENANT_ASSIGNED, TenancyEvent, TenantResource } from './tenancy.events';

export interface TenancyState {
  tenantId: string | null;
}

export type TenancyCommand = { kind: 'assign'; resource: TenantResource; id: string; tenantId: string | null; exists: boolean };

export const tenancyAggregate: Aggregate<TenancyState, TenancyCommand, TenancyEvent> = {
  initialState: () => ({ tenantId: null }),

  evolve(_state, event) {
    return { tenantId: event.data.tenantId };
  },

  decide(command, state) {
    if (!command.exists) throw new DomainError('not_found', `${command.resource} ${command.id} does not exist`);
    if (state.tenantId === command.tenantId) return [];
    return [{ type: TENANT_ASSIGNED, data: { resource: command.resource, id: command.id, tenantId: command.tenantId } }];
  },
};
