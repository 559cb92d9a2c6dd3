import { DomainEvent } from '../../eventing/aggregate';
import type { Role } from '../../eventing/roles';

export const API_TOKEN_ISSUED = 'ApiTokenIssued';
export const API_TOKEN_REVOKED = 'ApiTokenRevoked';

/** `role` is absent on tokens issued before roles existed: see legacyRole(). `tenantId`: the tenant the token is confined to (absent or null: none). */
export type ApiTokenIssued = DomainEvent<typeof API_TOKEN_ISSUED, { tokenId: string; name: string; tokenHash: string; role?: Role; tenantId?: string | null }>;
export type ApiTokenRevoked = DomainEvent<typeof API_TOKEN_REVOKED, { tokenId: string; name: string }>;
export type ApiTokenEvent = ApiTokenIssued | ApiTokenRevoked;

export const apiTokenStream = (tokenId: string) => `api-token-${tokenId}`;
