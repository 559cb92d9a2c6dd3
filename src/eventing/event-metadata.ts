import { EventMetadata } from '../event-store/event-store.port';
import { currentContext } from './request-context';

export const SCHEMA_VERSION = 1;

/**
 * `commandId` names the command whose handler appended the event; `causationId` names what
 * caused that command: the event a workflow reacted to, or the command itself when a person
 * or an agent sent it.
 */
export function metadataFor(commandId: string, overrides: Partial<EventMetadata> = {}): EventMetadata {
  const context = currentContext();
  return {
    correlationId: context.correlationId,
    causationId: context.causationId ?? commandId,
    commandId,
    actor: context.actor,
    schemaVersion: SCHEMA_VERSION,
    ...overrides,
  };
}
