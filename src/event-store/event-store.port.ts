export const EVENT_STORE = Symbol('EVENT_STORE');

/** Revisions are 0-based per stream; positions are opaque strings that sort in global order. */
export type ExpectedRevision = 'no_stream' | 'any' | 'stream_exists' | bigint;

export interface EventMetadata {
  correlationId: string;
  causationId: string;
  actor: string;
  schemaVersion: number;
  [key: string]: unknown;
}

export type JsonObject = { [key: string]: unknown };

export interface NewEvent {
  id?: string;
  type: string;
  data: JsonObject;
  metadata: EventMetadata;
}

export interface RecordedEvent {
  id: string;
  streamId: string;
  type: string;
  revision: bigint;
  position: string;
  data: JsonObject;
  metadata: EventMetadata;
  createdAt: Date;
}

export interface AppendResult {
  nextRevision: bigint;
  position: string;
}

export interface EventFilter {
  eventTypes?: string[];
  streamPrefixes?: string[];
}

export interface ReadStreamOptions {
  direction?: 'forwards' | 'backwards';
  fromRevision?: bigint;
  maxCount?: number;
}

export interface ReadAllOptions {
  after?: string | null;
  filter?: EventFilter;
  maxCount?: number;
}

export interface SubscribeOptions {
  after?: string | null;
  filter?: EventFilter;
  signal?: AbortSignal;
}

export interface EventStore {
  readonly kind: 'postgres' | 'eventstoredb';
  append(streamId: string, events: NewEvent[], expected?: ExpectedRevision): Promise<AppendResult>;
  /** Returns [] for a stream that does not exist. */
  readStream(streamId: string, options?: ReadStreamOptions): Promise<RecordedEvent[]>;
  readAll(options?: ReadAllOptions): Promise<RecordedEvent[]>;
  /** Every event carrying this correlation id, in global order. */
  readCorrelation(correlationId: string, maxCount: number): Promise<RecordedEvent[]>;
  /** Catches up from `after`, then yields new events as they commit, until the signal aborts. */
  subscribeToAll(options?: SubscribeOptions): AsyncIterable<RecordedEvent>;
  /**
   * How many appends this store has heard of so far (with PostgreSQL: every process's, through LISTEN). Taken before
   * a read and handed to waitForAppend after it, so an append that commits in between is not slept through.
   */
  appendsHeard(): number;
  /**
   * Resolves when something may have been appended since `heard` (appendsHeard() before the caller's last read), or
   * after at most maxWaitMs; never rejects. A store that cannot hear appends waits less than maxWaitMs, as a poll.
   */
  waitForAppend(maxWaitMs: number, signal?: AbortSignal, heard?: number): Promise<void>;
  /** Number of events after a position matching a filter; null when the store cannot count cheaply. */
  countAfter(after: string | null, filter?: EventFilter): Promise<number | null>;
  close(): Promise<void>;
}

export class WrongExpectedRevisionError extends Error {
  constructor(
    readonly streamId: string,
    readonly expected: ExpectedRevision,
    readonly actual: bigint | 'no_stream',
  ) {
    super(`wrong expected revision on stream ${streamId}: expected ${String(expected)}, actual ${String(actual)}`);
    this.name = 'WrongExpectedRevisionError';
  }
}

export class DuplicateEventIdError extends Error {
  constructor(readonly eventId: string) {
    super(`event id ${eventId} was already appended with different content or to a different position`);
    this.name = 'DuplicateEventIdError';
  }
}
