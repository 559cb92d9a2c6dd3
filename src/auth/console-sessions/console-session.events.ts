import { DomainEvent } from '../../eventing/aggregate';

export const CONSOLE_SESSION_STARTED = 'ConsoleSessionStarted';
export const CONSOLE_SESSION_ENDED = 'ConsoleSessionEnded';

/**
 * A browser's log-in: the cookie holds `<sessionId>.<secret>`; the event holds only the secret's sha256 hex
 * (`secretHash`) and the sha256 hex of the token it was opened with (`tokenHash`), which is verified again on every
 * request, so the session dies with that token. The audit routes show both hashes to admin tokens only.
 */
export type ConsoleSessionStarted = DomainEvent<typeof CONSOLE_SESSION_STARTED, { sessionId: string; secretHash: string; tokenHash: string; expiresAt: string }>;
/** `reason`: `logout` (the browser asked). A session whose token is revoked or expired needs no event: it no longer verifies. */
export type ConsoleSessionEnded = DomainEvent<typeof CONSOLE_SESSION_ENDED, { sessionId: string; reason: 'logout' }>;
export type ConsoleSessionEvent = ConsoleSessionStarted | ConsoleSessionEnded;

/** The hub's, not a tenant's (src/http/owned.ts leaves it out of every tenant's audit). */
export const consoleSessionStream = (sessionId: string) => `console-session-${sessionId}`;
