import { Query } from '@nestjs/cqrs';
import type { EventSearch } from '../../event-store/event-store.port';
import { AuditEvent } from '../audit-event';

/** Events by type, stream prefix, actor and time, in global order after a position; an empty page when none match. */
export class SearchEventsQuery extends Query<AuditEvent[]> {
  constructor(readonly search: EventSearch) {
    super();
  }
}
