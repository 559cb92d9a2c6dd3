import { DomainEvent } from '../../eventing/aggregate';

export const ADMIN_TOKEN_ROTATED = 'AdminTokenRotated';

/**
 * `generation`: 1 for the first rotation, one more for each after it. `tokenHash`: the sha256 hex of the new admin
 * token (the token itself is never stored); the audit routes show it to admin tokens only.
 */
export type AdminTokenRotated = DomainEvent<typeof ADMIN_TOKEN_ROTATED, { generation: number; tokenHash: string }>;
export type AdminTokenEvent = AdminTokenRotated;

/** One stream for the hub's one admin token; no tenant owns it (src/http/owned.ts streamOwner). */
export const ADMIN_TOKEN_STREAM = 'admin-token';
