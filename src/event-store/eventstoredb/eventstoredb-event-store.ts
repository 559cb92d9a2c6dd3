import { randomUUID } from 'node:crypto';
import {
  ANY,
  BACKWARDS,
  END,
  EventStoreDBClient,
  FORWARDS,
  NO_STREAM,
  START,
  STREAM_EXISTS,
  StreamNotFoundError,
  WrongExpectedVersionError,
  jsonEvent,
  streamNameFilter,
  type AllStreamResolvedEvent,
  type ResolvedEvent,
} from '@eventstore/db-client';
import { abortableSleep } from '../abortable-sleep';
import {
  AppendResult,
  EventFilter,
  EventSearch,
  EventMetadata,
  EventStore,
  ExpectedRevision,
  JsonObject,
  NewEvent,
  ReadAllOptions,
  ReadMark,
  ReadStreamOptions,
  RecordedEvent,
  SubscribeOptions,
  WrongExpectedRevisionError,
} from '../event-store.port';
import { decodePosition, encodePosition } from '../positions';

const PAGE = 500;
/** How often a waiter polls, whatever longer wait it asked for. */
const POLL_MS = 500;

/**
 * EventStoreDB adapter. System streams ($...) are never returned by readAll or
 * subscriptions; correlation and causation ids are also written as
 * $correlationId/$causationId so EventStoreDB's own by-correlation projection works.
 */
export class EventStoreDbEventStore implements EventStore {
  readonly kind = 'eventstoredb' as const;
  private readonly client: EventStoreDBClient;

  constructor(url: string) {
    this.client = EventStoreDBClient.connectionString(url);
  }

  async append(streamId: string, events: NewEvent[], expected: ExpectedRevision = 'any'): Promise<AppendResult> {
    try {
      const result = await this.client.appendToStream(
        streamId,
        events.map((e) =>
          jsonEvent({
            id: e.id ?? randomUUID(),
            type: e.type,
            data: e.data,
            metadata: { ...e.metadata, $correlationId: e.metadata.correlationId, $causationId: e.metadata.causationId },
          }),
        ),
        { expectedRevision: toExpected(expected) },
      );
      const pos = result.position;
      return { nextRevision: result.nextExpectedRevision, position: pos ? encodePosition(pos.commit, pos.prepare) : '' };
    } catch (error) {
      if (error instanceof WrongExpectedVersionError) {
        const actual = error.actualVersion;
        throw new WrongExpectedRevisionError(streamId, expected, typeof actual === 'bigint' ? actual : 'no_stream');
      }
      throw error;
    }
  }

  async readStream(streamId: string, options: ReadStreamOptions = {}): Promise<RecordedEvent[]> {
    const backwards = options.direction === 'backwards';
    return this.collect(streamId, {
      direction: backwards ? BACKWARDS : FORWARDS,
      fromRevision: options.fromRevision ?? (backwards ? END : START),
      maxCount: options.maxCount ?? Number.MAX_SAFE_INTEGER,
    });
  }

  async readAll(options: ReadAllOptions = {}): Promise<RecordedEvent[]> {
    return this.scan(options.after ?? null, options.maxCount ?? 1000, (e) => matches(e, options.filter));
  }

  /**
   * Reads $all forwards and filters here: EventStoreDB has no index on our metadata's actor, on time or on the data's
   * VM. A correlation alone has its own stream (`$bc-`), but with the other conditions and paging by `after` it is
   * filtered here like the rest.
   */
  async searchEvents(search: EventSearch): Promise<RecordedEvent[]> {
    const from = search.from?.getTime() ?? -Infinity;
    const to = search.to?.getTime() ?? Infinity;
    const equal = (want: string | undefined, got: unknown) => want === undefined || got === want;
    return this.scan(search.after ?? null, search.maxCount, (e) => {
      const at = e.createdAt.getTime();
      return (
        matches(e, search.filter) &&
        equal(search.actor, e.metadata.actor) &&
        equal(search.vmId, e.data.vmId) &&
        equal(search.correlationId, e.metadata.correlationId) &&
        at >= from &&
        at < to
      );
    });
  }

  private async scan(after: string | null, limit: number, keep: (e: RecordedEvent) => boolean): Promise<RecordedEvent[]> {
    const out: RecordedEvent[] = [];
    let from: ReturnType<typeof toEsdbPosition> | typeof START = after ? toEsdbPosition(after) : START;
    let skipFirst = Boolean(after);
    for (;;) {
      let read = 0;
      for await (const resolved of this.client.readAll({ fromPosition: from, direction: FORWARDS, maxCount: PAGE })) {
        read++;
        const recorded = toRecorded(resolved);
        if (!recorded) continue;
        from = toEsdbPosition(recorded.position);
        if (skipFirst && after === recorded.position) continue;
        if (!keep(recorded)) continue;
        out.push(recorded);
        if (out.length >= limit) return out;
      }
      skipFirst = true;
      if (read < PAGE) return out;
    }
  }

  /** Needs EventStoreDB's built-in $by_correlation_id projection to be running. */
  async readCorrelation(correlationId: string, maxCount: number): Promise<RecordedEvent[]> {
    return this.collect(`$bc-${correlationId}`, { resolveLinkTos: true, maxCount });
  }

  /** Every event of one stream as ours; a stream that does not exist reads as empty. */
  private async collect(streamName: string, options: Parameters<EventStoreDBClient['readStream']>[1]): Promise<RecordedEvent[]> {
    const out: RecordedEvent[] = [];
    try {
      for await (const resolved of this.client.readStream(streamName, options)) {
        const recorded = toRecorded(resolved);
        if (recorded) out.push(recorded);
      }
    } catch (error) {
      if (error instanceof StreamNotFoundError) return [];
      throw error;
    }
    return out;
  }

  async *subscribeToAll(options: SubscribeOptions = {}): AsyncIterable<RecordedEvent> {
    const subscription = this.client.subscribeToAll({
      fromPosition: options.after ? toEsdbPosition(options.after) : START,
      filter: options.filter?.streamPrefixes?.length ? streamNameFilter({ prefixes: options.filter.streamPrefixes }) : undefined,
    });
    const stop = () => void subscription.unsubscribe();
    options.signal?.addEventListener('abort', stop, { once: true });
    try {
      for await (const resolved of subscription) {
        const recorded = toRecorded(resolved as AllStreamResolvedEvent);
        if (!recorded || recorded.position === options.after || !matches(recorded, options.filter)) continue;
        yield recorded;
      }
    } finally {
      options.signal?.removeEventListener('abort', stop);
      await subscription.unsubscribe().catch(() => undefined);
    }
  }

  /** EventStoreDB has no cheap "something was appended" signal here: nothing is heard, and waiting is plain polling. */
  readMark(filter?: EventFilter): ReadMark {
    return { heard: 0, heldBack: false, filter };
  }

  async waitForAppend(maxWaitMs: number, signal?: AbortSignal): Promise<void> {
    await abortableSleep(Math.min(maxWaitMs, POLL_MS), signal);
  }

  async countAfter(): Promise<null> {
    return null;
  }

  async close(): Promise<void> {
    await this.client.dispose();
  }
}

function toExpected(expected: ExpectedRevision) {
  if (expected === 'no_stream') return NO_STREAM;
  if (expected === 'any') return ANY;
  if (expected === 'stream_exists') return STREAM_EXISTS;
  return expected;
}

function toEsdbPosition(position: string) {
  const [commit, prepare] = decodePosition(position);
  return { commit, prepare };
}

function matches(event: RecordedEvent, filter?: EventFilter): boolean {
  if (filter?.eventTypes?.length && !filter.eventTypes.includes(event.type)) return false;
  if (filter?.streamPrefixes?.length && !filter.streamPrefixes.some((p) => event.streamId.startsWith(p))) return false;
  return true;
}

function toRecorded(resolved: ResolvedEvent | AllStreamResolvedEvent): RecordedEvent | null {
  const e = resolved.event;
  if (!e || e.streamId.startsWith('$') || e.type.startsWith('$') || !e.isJson) return null;
  const position = e.position ?? (resolved as AllStreamResolvedEvent).commitPosition;
  const metadata = { ...(e.metadata as JsonObject) };
  delete metadata.$correlationId;
  delete metadata.$causationId;
  return {
    id: e.id,
    streamId: e.streamId,
    type: e.type,
    revision: e.revision,
    position: e.position ? encodePosition(e.position.commit, e.position.prepare) : encodePosition(String(position ?? 0n), 0n),
    data: e.data as JsonObject,
    metadata: metadata as EventMetadata,
    createdAt: new Date(e.created),
  };
}
