import { fold } from '../eventing/aggregate';
import { DomainError } from '../eventing/domain-error';
import { tenancyAggregate as tenancy } from './tenancy.aggregate';
import { TENANT_ASSIGNED, TenancyEvent } from './tenancy.events';

const assign = (tenantId: string | null, exists = true) => ({ kind: 'assign' as const, resource: 'agent' as const, id: 'a1', tenantId, exists });
const assigned = (tenantId: string | null): TenancyEvent => ({ type: TENANT_ASSIGNED, data: { resource: 'agent', id: 'a1', tenantId } });

describe('tenancy rules', () => {
  it('assigns a resource to a tenant, to another, and back to none', () => {
    expect(tenancy.decide(assign('acme'), tenancy.initialState())).toEqual([assigned('acme')]);
    expect(tenancy.decide(assign('globex'), fold(tenancy, [assigned('acme')]))).toEqual([assigned('globex')]);
    expect(tenancy.decide(assign(null), fold(tenancy, [assigned('acme')]))).toEqual([assigned(null)]);
  });

  it('records nothing when the tenant is already the one asked for', () => {
    expect(tenancy.decide(assign('acme'), fold(tenancy, [assigned('acme')]))).toEqual([]);
    expect(tenancy.decide(assign(null), tenancy.initialState())).toEqual([]);
  });

  it('refuses a resource that does not exist', () => {
    expect(() => tenancy.decide(assign('acme', false), tenancy.initialState())).toThrow(DomainError);
  });
});
