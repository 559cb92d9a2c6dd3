import { EventMetadata } from '../event-store/event-store.port';
import { currentContext } from './request-context';

export const SCHEMA_VERSION = 1;

export function metadataFor(causationId: string, overrides: Partial<EventMetadata> = {}): EventMetadata {
  const context = currentContext();
  return {
    correlationId: context.correlationId,
    causationId,
    actor: context.actor,
    schemaVersion: SCHEMA_VERSION,
    ...overrides,
  };
}
