import { DomainEvent } from '../eventing/aggregate';

export const TENANT_ASSIGNED = 'TenantAssigned';

/** What an admin gives a tenant: an agent (and with it the VMs it reports and their backups) or a repository. */
export type TenantResource = 'agent' | 'repository';

/** `tenantId` null: the resource belongs to no tenant again (only tokens without a tenant see it). */
export type TenantAssigned = DomainEvent<typeof TENANT_ASSIGNED, { resource: TenantResource; id: string; tenantId: string | null }>;
export type TenancyEvent = TenantAssigned;

export const TENANCY_STREAM_PREFIX = 'tenancy-';
export const tenancyStream = (resource: TenantResource, id: string) => `${TENANCY_STREAM_PREFIX}${resource}-${id}`;

/** Tenant ids name customers in URLs and logs: short, lower case, no spaces. */
export const TENANT_ID = /^[a-z0-9][a-z0-9-]{0,62}$/;
export const TENANT_ID_MESSAGE = 'tenantId must be 1-63 characters of a-z 0-9 - starting with a letter or digit';
