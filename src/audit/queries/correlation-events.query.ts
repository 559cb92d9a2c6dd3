import { Query } from '@nestjs/cqrs';
import { AuditEvent } from '../audit-event';

/** Every event carrying one correlation id, in global order across streams; not found when none does. */
export class CorrelationEventsQuery extends Query<AuditEvent[]> {
  constructor(
    readonly correlationId: string,
    readonly limit: number,
  ) {
    super();
  }
}
