import { Inject } from '@nestjs/common';
import { IQueryHandler, QueryHandler } from '@nestjs/cqrs';
import { EVENT_STORE, EventStore } from '../event-store/event-store.port';
import { notFound } from '../http/not-found';
import { backupStream } from '../backups/backup.events';
import { restoreStream } from '../vm-restore/restore.events';
import { AuditEvent, toAuditEvent } from './audit-event';
import { CorrelationEventsQuery } from './queries/correlation-events.query';
import { SearchEventsQuery } from './queries/search-events.query';
import { StreamEventsQuery } from './queries/stream-events.query';

// The audit trail is a replay of the event store itself, never a read model that could disagree with it.

@QueryHandler(StreamEventsQuery)
export class StreamEventsHandler implements IQueryHandler<StreamEventsQuery, AuditEvent[]> {
  constructor(@Inject(EVENT_STORE) private readonly store: EventStore) {}

  async execute({ streamId, fromRevision, limit }: StreamEventsQuery): Promise<AuditEvent[]> {
    const events = await this.store.readStream(streamId, { fromRevision: BigInt(fromRevision), maxCount: limit });
    // Past the end of a stream is an empty page; a stream without any events does not exist.
    if (events.length === 0 && !fromRevision) throw notFound(`stream ${streamId} has no events`);
    return events.map(toAuditEvent);
  }
}

@QueryHandler(CorrelationEventsQuery)
export class CorrelationEventsHandler implements IQueryHandler<CorrelationEventsQuery, AuditEvent[]> {
  constructor(@Inject(EVENT_STORE) private readonly store: EventStore) {}

  async execute({ correlationId, limit }: CorrelationEventsQuery): Promise<AuditEvent[]> {
    const events = await this.store.readCorrelation(correlationId, limit);
    if (events.length === 0) throw notFound(`no events carry correlation id ${correlationId}`);
    return events.map(toAuditEvent);
  }
}

/** The streams a job opens with the event that starts its story, whatever kind of job the id names. */
const JOB_STREAMS = [backupStream, restoreStream];

@QueryHandler(SearchEventsQuery)
export class SearchEventsHandler implements IQueryHandler<SearchEventsQuery, AuditEvent[]> {
  constructor(@Inject(EVENT_STORE) private readonly store: EventStore) {}

  async execute({ search, jobId }: SearchEventsQuery): Promise<AuditEvent[]> {
    if (jobId === undefined) return (await this.store.searchEvents(search)).map(toAuditEvent);
    // A job's story is what its request's correlation id carries, the same the job's page shows; a job that does not
    // exist matches nothing, as a VM that does not exist does.
    const correlationId = await this.correlationOf(jobId);
    return correlationId ? (await this.store.searchEvents({ ...search, correlationId })).map(toAuditEvent) : [];
  }

  private async correlationOf(jobId: string): Promise<string | null> {
    for (const stream of JOB_STREAMS) {
      const [first] = await this.store.readStream(stream(jobId), { maxCount: 1 });
      if (first) return first.metadata.correlationId;
    }
    return null;
  }
}
