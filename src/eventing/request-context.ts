import { AsyncLocalStorage } from 'node:async_hooks';
import { randomUUID } from 'node:crypto';

export interface RequestContext {
  correlationId: string;
  actor: string;
  /** The command or event that the next appended events are caused by. */
  causationId?: string;
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

export function setActor(actor: string): void {
  const store = storage.getStore();
  if (store) store.actor = actor;
}
