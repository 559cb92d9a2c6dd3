import { Inject, Injectable } from '@nestjs/common';
import { EVENT_STORE, EventStore } from '../event-store/event-store.port';
import { AuditEvent, toAuditEvent } from './audit-event';

/** The audit trail is a replay of the event store itself, never a separate log that could disagree with it. */
@Injectable()
export class AuditService {
  constructor(@Inject(EVENT_STORE) private readonly store: EventStore) {}

  async stream(streamId: string, fromRevision: number, limit: number): Promise<AuditEvent[]> {
    const events = await this.store.readStream(streamId, { fromRevision: BigInt(fromRevision), maxCount: limit });
    return events.map(toAuditEvent);
  }

  async correlation(correlationId: string, limit: number): Promise<AuditEvent[]> {
    return (await this.store.readCorrelation(correlationId, limit)).map(toAuditEvent);
  }
}
