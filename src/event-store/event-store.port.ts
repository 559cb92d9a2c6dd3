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
  /** Taken with readMark() before the read; the read records on it what waitForAppend needs to know. */
  mark?: ReadMark;
}

/** An audit search: every condition given must hold; events come in global order after `after`. */
export interface EventSearch {
  filter?: EventFilter;
  actor?: string;
  /** The VM the event's data names (`data.vmId`). */
  vmId?: string;
  correlationId?: string;
  /** createdAt at or after. */
  from?: Date;
  /** createdAt before. */
  to?: Date;
  after?: string | null;
  maxCount: number;
}

/** What a reader knew when it read: taken before a read (readMark), filled in by readAll, handed to waitForAppend after. */
export interface ReadMark {
  /** Appends the store had heard of when the mark was taken (with PostgreSQL: every process's, through LISTEN). */
  readonly heard: number;
  /** Set by the read: committed events existed that it could not return yet, because an older transaction still ran. */
  heldBack: boolean;
  /** The read's filter: appends it cannot match do not end a wait. */
  readonly filter?: EventFilter;
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
  /** Events by type, stream prefix, actor, VM, correlation and time, in global order (the audit's search). */
  searchEvents(search: EventSearch): Promise<RecordedEvent[]>;
  /** Catches up from `after`, then yields new events as they commit, until the signal aborts. */
  subscribeToAll(options?: SubscribeOptions): AsyncIterable<RecordedEvent>;
  /**
   * A mark for the next read (with that read's filter): handed to readAll and then to waitForAppend, no append
   * between the two that the filter may match is slept through.
   */
  readMark(filter?: EventFilter): ReadMark;
  /**
   * Resolves when something the mark's filter may match may have been appended since `mark` was taken, or after at
   * most maxWaitMs; never rejects.
   * Where nothing would wake it (no mark, no way to hear appends, events held back at the marked read) it waits less, as a poll.
   */
  waitForAppend(maxWaitMs: number, signal?: AbortSignal, mark?: ReadMark): Promise<void>;
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
