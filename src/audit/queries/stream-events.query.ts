import { Query } from '@nestjs/cqrs';
import { AuditEvent } from '../audit-event';

/** One stream replayed in order from a revision; not found when a stream read from its start has no events. */
export class StreamEventsQuery extends Query<AuditEvent[]> {
  constructor(
    readonly streamId: string,
    readonly fromRevision: number,
    readonly limit: number,
  ) {
    super();
  }
}
