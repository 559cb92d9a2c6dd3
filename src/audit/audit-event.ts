import { RecordedEvent } from '../event-store/event-store.port';

export interface AuditEvent {
  eventId: string;
  streamId: string;
  type: string;
  revision: string;
  position: string;
  time: string;
  data: RecordedEvent['data'];
  metadata: RecordedEvent['metadata'];
}

export function toAuditEvent(e: RecordedEvent): AuditEvent {
  return {
    eventId: e.id,
    streamId: e.streamId,
    type: e.type,
    revision: e.revision.toString(),
    position: e.position,
    time: e.createdAt.toISOString(),
    data: e.data,
    metadata: e.metadata,
  };
}
