import { DomainEvent } from '../../eventing/aggregate';

export const API_TOKEN_ISSUED = 'ApiTokenIssued';
export const API_TOKEN_REVOKED = 'ApiTokenRevoked';

export type ApiTokenIssued = DomainEvent<typeof API_TOKEN_ISSUED, { tokenId: string; name: string; tokenHash: string }>;
export type ApiTokenRevoked = DomainEvent<typeof API_TOKEN_REVOKED, { tokenId: string; name: string }>;
export type ApiTokenEvent = ApiTokenIssued | ApiTokenRevoked;

export const apiTokenStream = (tokenId: string) => `api-token-${tokenId}`;
