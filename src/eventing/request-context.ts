import { AsyncLocalStorage } from 'node:async_hooks';
import { randomUUID } from 'node:crypto';
import type { Role } from './roles';

export interface RequestContext {
  correlationId: string;
  actor: string;
  /** The role of the request's token; absent outside requests (timers, workflows), which no access rule applies to. */
  role?: Role;
  /** The tenant a token is confined to; null or absent: it sees every tenant. */
  tenantId?: string | null;
  /** The command or event that the next appended events are caused by. */
  causationId?: string;
  /**
   * The SHA-256 of the request's bearer token (never the token): what a request leaves open behind it (a download
   * link, a stream) is tied to it, so it ends when that token is revoked or rotated.
   */
  credential?: string;
  /** Set when the request came with the console's session cookie rather than a bearer header (src/auth/console-sessions.ts). */
  session?: { sessionId: string; csrfToken: string };
}

const storage = new AsyncLocalStorage<RequestContext>();

export const SYSTEM_ACTOR = 'system';

export function runWithContext<T>(context: RequestContext, fn: () => T): T {
  return storage.run(context, fn);
}

/** Outside a request (timers, process managers) work runs as `system` under a fresh correlation id. */
export function currentContext(): RequestContext {
  return storage.getStore() ?? { correlationId: randomUUID(), actor: SYSTEM_ACTOR };
}

/**
 * Work done in reaction to an event (a workflow step, a cleanup) runs under the event's
 * correlation id with the event as the cause of whatever it appends next.
 */
export function causedBy<T>(event: { id: string; metadata?: { correlationId?: unknown } } | string, fn: () => T, correlationId?: string): T {
  const current = currentContext();
  const id = typeof event === 'string' ? event : event.id;
  const fromEvent = typeof event === 'string' ? undefined : typeof event.metadata?.correlationId === 'string' ? event.metadata.correlationId : undefined;
  return storage.run({ correlationId: correlationId ?? fromEvent ?? current.correlationId, actor: SYSTEM_ACTOR, causationId: id }, fn);
}

/**
 * Work that is a story of its own although one step starts several of them (the jobs of one policy slot): a fresh
 * correlation id, so each job's audit holds its own events and not its siblings', with the current cause kept.
 */
export function ownStory<T>(fn: () => T): T {
  return storage.run({ ...currentContext(), correlationId: randomUUID() }, fn);
}

export interface Principal {
  actor: string;
  role: Role;
  tenantId: string | null;
}

export function setPrincipal(principal: Principal, credential?: string, session?: RequestContext['session']): void {
  const store = storage.getStore();
  if (store) Object.assign(store, principal, credential ? { credential } : {}, session ? { session } : {});
}
