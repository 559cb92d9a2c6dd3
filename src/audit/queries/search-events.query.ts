import { Query } from '@nestjs/cqrs';
import type { EventSearch } from '../../event-store/event-store.port';
import { AuditEvent } from '../audit-event';

/**
 * Events by type, stream prefix, actor, VM and time, in global order after a position; an empty page when none match.
 * `jobId` (a backup's, a restore's or a drill's) narrows it to the job's story: its correlation id.
 */
export class SearchEventsQuery extends Query<AuditEvent[]> {
  constructor(
    readonly search: EventSearch,
    readonly jobId?: string,
  ) {
    super();
  }
}
