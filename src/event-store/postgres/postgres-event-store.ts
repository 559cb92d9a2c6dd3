import { randomUUID } from 'node:crypto';
import { EventEmitter } from 'node:events';
import { Client, ClientConfig, Pool } from 'pg';
import { abortableSleep } from '../abortable-sleep';
import {
  AppendResult,
  DuplicateEventIdError,
  EventFilter,
  EventSearch,
  EventStore,
  ExpectedRevision,
  NewEvent,
  ReadAllOptions,
  ReadMark,
  ReadStreamOptions,
  RecordedEvent,
  SubscribeOptions,
  WrongExpectedRevisionError,
} from '../event-store.port';
import { decodePosition, encodePosition } from '../positions';
import { AppendNotice, mayMatch, noticePayload, parseNotice } from './append-notice';

/** Heard by every hub on the database: appends, and anything else after which readers must read again (a projection reset). */
export const NOTIFY_CHANNEL = 'sendense_es_appended';
const SUBSCRIPTION_BATCH = 500;
/**
 * A subscriber's longest sleep while LISTEN is up: appends wake it, so this only bounds the delay after a lost
 * notification (pg_notify is sent after the append commits, and an error sending it is ignored).
 */
const IDLE_WAIT_MS = 10_000;
/** Without a LISTEN connection, or while committed events wait behind the visibility horizon, nothing wakes a sleeper: it polls. */
const POLL_WITHOUT_WAKEUP_MS = 500;
/** Groups committing at once: enough to keep the server's WAL flushes busy, few enough to leave the pool to readers. */
const MAX_GROUPS_IN_FLIGHT = 4;
/** Appends in one group: bounds one transaction's row locks and the time a lone conflict waits for its answer. */
const MAX_GROUP_APPENDS = 200;
/** Notices kept for waiters whose mark is older than the latest: one older than all of them wakes its waiter at once. */
const NOTICES_KEPT = 256;
const EVENT_COLUMNS = `tx_id::text AS tx, seq::text AS seq, stream_id, revision::text, event_id, event_type, data, metadata, created_at`;

interface PendingAppend {
  streamId: string;
  expected: ExpectedRevision;
  events: (NewEvent & { id: string })[];
  resolve(result: AppendResult): void;
  reject(error: unknown): void;
}

/** es_append_group()'s answer for one append: ok with its position, or why it was refused (revision = the stream's actual one). */
interface GroupRow {
  ord: number;
  status: 'ok' | 'duplicate' | 'conflict';
  tx: string | null;
  seq: string | null;
  revision: string | null;
}

interface EventRow {
  tx: string;
  seq: string;
  stream_id: string;
  revision: string;
  event_id: string;
  event_type: string;
  data: RecordedEvent['data'];
  metadata: RecordedEvent['metadata'];
  created_at: Date;
}

/**
 * Event store on PostgreSQL. Global order is (tx_id, seq); readers only see
 * transactions older than the oldest one still running, so an event that
 * commits late can never be skipped by a reader that already moved past it.
 */
export class PostgresEventStore implements EventStore {
  readonly kind = 'postgres' as const;
  private readonly appended = new EventEmitter();
  /** ReadMark.heard: notifications received, plus one for each time LISTEN (re)started. */
  private heard = 0;
  /** What the latest notifications said, oldest first; `heard` counts the last of them. */
  private readonly notices: AppendNotice[] = [];
  private listener?: Client;
  private listenerStarting?: Promise<void>;
  private closed = false;
  private readonly waiting: PendingAppend[] = [];
  private groupsInFlight = 0;
  private flushScheduled = false;

  constructor(
    private readonly pool: Pool,
    private readonly listenerConfig: ClientConfig,
  ) {
    this.appended.setMaxListeners(0);
    // An idle pooled connection that the server drops is discarded by the pool; it must not crash the hub.
    this.pool.on('error', () => undefined);
  }

  async append(streamId: string, events: NewEvent[], expected: ExpectedRevision = 'any'): Promise<AppendResult> {
    if (events.length === 0) throw new Error('append needs at least one event');
    const withIds = events.map((e) => ({ ...e, id: e.id ?? randomUUID() }));
    return new Promise((resolve, reject) => {
      this.waiting.push({ streamId, expected, events: withIds, resolve, reject });
      this.scheduleFlush();
    });
  }

  /**
   * Group commit. An append that finds a group slot free is sent at once (one append alone costs
   * what it always did); appends that arrive while every slot waits on its commit gather and go
   * together in the next group: one transaction, one WAL flush. Several groups are in flight at
   * a time, so no single lock or connection serialises appends.
   */
  private scheduleFlush(): void {
    if (this.flushScheduled) return;
    this.flushScheduled = true;
    setImmediate(() => {
      this.flushScheduled = false;
      this.flush();
    });
  }

  private flush(): void {
    while (this.waiting.length > 0 && this.groupsInFlight < MAX_GROUPS_IN_FLIGHT) {
      const group = this.waiting.splice(0, MAX_GROUP_APPENDS);
      this.groupsInFlight++;
      void this.commitGroup(group).finally(() => {
        this.groupsInFlight--;
        this.scheduleFlush();
      });
    }
  }

  private async commitGroup(group: PendingAppend[]): Promise<void> {
    // Stream order: two groups lock their stream rows in the same order and cannot deadlock. The
    // sort is stable, so two appends to one stream keep the order in which they were made.
    const ordered = [...group].sort((a, b) => (a.streamId < b.streamId ? -1 : a.streamId > b.streamId ? 1 : 0));
    let rows: GroupRow[];
    try {
      const events = ordered.flatMap((a) => a.events);
      const result = await this.pool.query<GroupRow>(`SELECT * FROM es_append_group($1, $2, $3::int[], $4::uuid[], $5::text[], $6::jsonb[], $7::jsonb[])`, [
        ordered.map((a) => a.streamId),
        ordered.map((a) => (typeof a.expected === 'bigint' ? a.expected.toString() : a.expected)),
        ordered.map((a) => a.events.length),
        events.map((e) => e.id),
        events.map((e) => e.type),
        events.map((e) => JSON.stringify(e.data)),
        events.map((e) => JSON.stringify(e.metadata)),
      ]);
      rows = result.rows;
    } catch {
      // Something no single append decides failed the group (another group racing with the same
      // event ids, a lost connection): each append then gets its own transaction and its own answer.
      await Promise.all(ordered.map((a) => this.appendAlone(a).then(a.resolve, a.reject)));
      return;
    }
    if (rows.some((r) => r.status === 'ok')) this.pool.query('SELECT pg_notify($1, $2)', [NOTIFY_CHANNEL, noticePayload(ordered)]).catch(() => undefined);
    await Promise.all(
      rows.map(async (row) => {
        const append = ordered[row.ord - 1];
        try {
          append.resolve(await this.answer(append, row));
        } catch (error) {
          append.reject(error);
        }
      }),
    );
  }

  private async answer(append: PendingAppend, row: GroupRow): Promise<AppendResult> {
    if (row.status === 'ok') return { nextRevision: BigInt(row.revision!), position: encodePosition(row.tx!, row.seq!) };
    const ids = append.events.map((e) => e.id);
    const replay = await this.findIdempotentReplay(append.streamId, ids);
    if (replay) return replay;
    if (row.status === 'duplicate') throw new DuplicateEventIdError(ids.join(','));
    throw new WrongExpectedRevisionError(append.streamId, append.expected, row.revision === null ? 'no_stream' : BigInt(row.revision));
  }

  /** One append in its own transaction through es_append(), which raises on a conflict. */
  private async appendAlone({ streamId, expected, events }: PendingAppend): Promise<AppendResult> {
    const ids = events.map((e) => e.id);
    let rows: { tx: string; seq: string; last_revision: string }[];
    try {
      const result = await this.pool.query<{ tx: string; seq: string; last_revision: string }>(
        `SELECT * FROM es_append($1, $2, $3::uuid[], $4::text[], $5::jsonb[], $6::jsonb[])`,
        [
          streamId,
          typeof expected === 'bigint' ? expected.toString() : expected,
          ids,
          events.map((e) => e.type),
          events.map((e) => JSON.stringify(e.data)),
          events.map((e) => JSON.stringify(e.metadata)),
        ],
      );
      rows = result.rows;
    } catch (error) {
      const code = (error as { code?: string }).code;
      const duplicate = code === '23505' && (error as { constraint?: string }).constraint === 'es_events_event_id_key';
      if (code !== 'SE409' && !duplicate) throw error;
      const replay = await this.findIdempotentReplay(streamId, ids);
      if (replay) return replay;
      if (duplicate) throw new DuplicateEventIdError(ids.join(','));
      const actual = (error as { detail?: string }).detail;
      throw new WrongExpectedRevisionError(streamId, expected, !actual || actual === 'no_stream' ? 'no_stream' : BigInt(actual));
    }
    this.pool.query('SELECT pg_notify($1, $2)', [NOTIFY_CHANNEL, noticePayload([{ streamId, events }])]).catch(() => undefined);
    const last = rows.reduce((a, b) => (BigInt(a.seq) > BigInt(b.seq) ? a : b));
    return { nextRevision: BigInt(last.last_revision), position: encodePosition(last.tx, last.seq) };
  }

  /** Appending the same event ids again to the same stream succeeds without writing anything. */
  private async findIdempotentReplay(streamId: string, ids: string[]): Promise<AppendResult | null> {
    const existing = await this.pool.query<{ stream_id: string; revision: string; tx: string; seq: string }>(
      `SELECT stream_id, revision::text, tx_id::text AS tx, seq::text AS seq FROM es_events WHERE event_id = ANY($1::uuid[])`,
      [ids],
    );
    if (existing.rowCount === 0) return null;
    if (existing.rowCount !== ids.length || existing.rows.some((r) => r.stream_id !== streamId)) throw new DuplicateEventIdError(ids.join(','));
    const last = existing.rows.reduce((a, b) => (BigInt(a.revision) > BigInt(b.revision) ? a : b));
    return { nextRevision: BigInt(last.revision), position: encodePosition(last.tx, last.seq) };
  }

  async readStream(streamId: string, options: ReadStreamOptions = {}): Promise<RecordedEvent[]> {
    const backwards = options.direction === 'backwards';
    const from = options.fromRevision;
    const rows = await this.pool.query<EventRow>(
      `SELECT ${EVENT_COLUMNS}
       FROM es_events
       WHERE stream_id = $1 AND ($2::bigint IS NULL OR ${backwards ? 'revision <= $2' : 'revision >= $2'})
       ORDER BY es_events.revision ${backwards ? 'DESC' : 'ASC'} LIMIT $3`,
      [streamId, from === undefined ? null : from.toString(), options.maxCount ?? null],
    );
    return rows.rows.map(toRecorded);
  }

  async readAll(options: ReadAllOptions = {}): Promise<RecordedEvent[]> {
    const [tx, seq] = options.after ? decodePosition(options.after) : [0n, 0n];
    const { types, prefixes } = filterParams(options.filter);
    const params = [tx.toString(), seq.toString(), types, prefixes, options.maxCount ?? 1000];
    const visible = (horizon: string) => `SELECT ${EVENT_COLUMNS}
       FROM es_events
       WHERE (tx_id, seq) > ($1::text::xid8, $2::bigint)
         AND tx_id < ${horizon}
         AND ($3::text[] IS NULL OR event_type = ANY($3::text[]))
         AND ($4::text[] IS NULL OR stream_id LIKE ANY($4::text[]))
       ORDER BY es_events.tx_id, es_events.seq LIMIT $5`;
    if (!options.mark) return (await this.pool.query<EventRow>(visible('pg_snapshot_xmin(pg_current_snapshot())'), params)).rows.map(toRecorded);
    // One statement, one snapshot: the events below its horizon, and whether committed ones wait above it.
    const rows = await this.pool.query<Partial<EventRow> & { held_back: boolean }>(
      `WITH horizon AS (SELECT pg_snapshot_xmin(pg_current_snapshot()) AS xmin)
       SELECT EXISTS (SELECT 1 FROM es_events WHERE tx_id >= horizon.xmin) AS held_back, e.*
       FROM horizon LEFT JOIN LATERAL (${visible('horizon.xmin')}) e ON true
       ORDER BY e.tx::xid8, e.seq::bigint`,
      params,
    );
    options.mark.heldBack = rows.rows[0].held_back;
    return rows.rows.filter((r) => r.event_id != null).map((r) => toRecorded(r as EventRow));
  }

  async readCorrelation(correlationId: string, maxCount: number): Promise<RecordedEvent[]> {
    const rows = await this.pool.query<EventRow>(
      `SELECT ${EVENT_COLUMNS} FROM es_events
       WHERE metadata->>'correlationId' = $1 AND tx_id < pg_snapshot_xmin(pg_current_snapshot())
       ORDER BY es_events.tx_id, es_events.seq LIMIT $2`,
      [correlationId, maxCount],
    );
    return rows.rows.map(toRecorded);
  }

  /**
   * Actor, time and correlation have indexes; `data->>'vmId'` has none: a search by VM alone walks the events in global
   * order until it has a page, most of the table on a large store where the VM has few events. The answer is the same,
   * only slower; an expression index on it is the fix if searches by VM become common.
   */
  async searchEvents(search: EventSearch): Promise<RecordedEvent[]> {
    const [tx, seq] = search.after ? decodePosition(search.after) : [0n, 0n];
    const { types, prefixes } = filterParams(search.filter);
    const rows = await this.pool.query<EventRow>(
      `SELECT ${EVENT_COLUMNS} FROM es_events
       WHERE (tx_id, seq) > ($1::text::xid8, $2::bigint)
         AND tx_id < pg_snapshot_xmin(pg_current_snapshot())
         AND ($3::text[] IS NULL OR event_type = ANY($3::text[]))
         AND ($4::text[] IS NULL OR stream_id LIKE ANY($4::text[]))
         AND ($5::text IS NULL OR metadata->>'actor' = $5)
         AND ($6::timestamptz IS NULL OR created_at >= $6)
         AND ($7::timestamptz IS NULL OR created_at < $7)
         AND ($9::text IS NULL OR data->>'vmId' = $9)
         AND ($10::text IS NULL OR metadata->>'correlationId' = $10)
       ORDER BY es_events.tx_id, es_events.seq LIMIT $8`,
      [tx.toString(), seq.toString(), types, prefixes, search.actor ?? null, search.from ?? null, search.to ?? null, search.maxCount, search.vmId ?? null, search.correlationId ?? null],
    );
    return rows.rows.map(toRecorded);
  }

  async countAfter(after: string | null, filter?: EventFilter): Promise<number> {
    const [tx, seq] = after ? decodePosition(after) : [0n, 0n];
    const { types, prefixes } = filterParams(filter);
    const result = await this.pool.query<{ n: string }>(
      `SELECT count(*)::text AS n FROM es_events
       WHERE (tx_id, seq) > ($1::text::xid8, $2::bigint)
         AND ($3::text[] IS NULL OR event_type = ANY($3::text[]))
         AND ($4::text[] IS NULL OR stream_id LIKE ANY($4::text[]))`,
      [tx.toString(), seq.toString(), types, prefixes],
    );
    return Number(result.rows[0].n);
  }

  async *subscribeToAll(options: SubscribeOptions = {}): AsyncIterable<RecordedEvent> {
    let after = options.after ?? null;
    while (!options.signal?.aborted && !this.closed) {
      const mark = this.readMark(options.filter);
      const batch = await this.readAll({ after, filter: options.filter, maxCount: SUBSCRIPTION_BATCH, mark });
      for (const event of batch) {
        if (options.signal?.aborted) return;
        yield event;
        after = event.position;
      }
      if (batch.length < SUBSCRIPTION_BATCH) await this.waitForAppend(IDLE_WAIT_MS, options.signal, mark);
    }
  }

  readMark(filter?: EventFilter): ReadMark {
    return { heard: this.heard, heldBack: false, filter };
  }

  async waitForAppend(maxWaitMs: number, signal?: AbortSignal, mark?: ReadMark): Promise<void> {
    const heard = mark?.heard ?? this.heard;
    await this.ensureListener().catch(() => undefined);
    // Appends the reader's filter cannot match do not wake it: its next read would find nothing. Events held back
    // at its read are another matter: they become readable when an older transaction ends, most often another
    // append, whatever it appended (any append wakes the reader), or a transaction that notifies nobody (so it
    // polls). Without a mark, whether events are held back is unknown: it polls too.
    const filter = mark?.heldBack ? undefined : mark?.filter;
    if (this.heardSince(heard, filter)) return;
    const hearing = this.listener !== undefined && mark !== undefined && !mark.heldBack;
    await abortableSleep(hearing ? maxWaitMs : Math.min(maxWaitMs, POLL_WITHOUT_WAKEUP_MS), signal, (wake) => {
      const onNotice = (notice: AppendNotice) => {
        if (mayMatch(notice, filter)) wake();
      };
      this.appended.on('appended', onNotice);
      return () => this.appended.off('appended', onNotice);
    });
  }

  /** Whether a notice heard after the `heard`-th may match the filter; one no longer kept counts as a match. */
  private heardSince(heard: number, filter: EventFilter | undefined): boolean {
    const unseen = this.heard - heard;
    if (unseen <= 0) return false;
    if (unseen > this.notices.length) return true;
    return this.notices.slice(-unseen).some((notice) => mayMatch(notice, filter));
  }

  private hear(notice: AppendNotice): void {
    this.heard++;
    this.notices.push(notice);
    if (this.notices.length > NOTICES_KEPT) this.notices.shift();
    this.appended.emit('appended', notice);
  }

  /** LISTEN only shortens waits: readers always read the table, and without a listener they poll every 500 ms. */
  private ensureListener(): Promise<void> {
    if (this.listener || this.closed) return Promise.resolve();
    if (!this.listenerStarting) {
      const client = new Client(this.listenerConfig);
      this.listenerStarting = client
        .connect()
        .then(() => client.query(`LISTEN ${NOTIFY_CHANNEL}`))
        .then(() => {
          client.on('notification', (message) => this.hear(parseNotice(message.payload)));
          client.on('error', () => {
            this.listener = undefined;
            this.listenerStarting = undefined;
            client.end().catch(() => undefined);
            // sleepers counting on this listener read again, then poll while it is rebuilt
            this.appended.emit('appended', 'everything');
          });
          if (this.closed) void client.end();
          else {
            this.listener = client;
            // appends committed before LISTEN took effect were never heard: count them as one, so a waiter rereads
            this.hear('everything');
          }
        })
        .catch((error) => {
          this.listenerStarting = undefined;
          void client.end().catch(() => undefined);
          throw error;
        });
    }
    return this.listenerStarting;
  }

  async close(): Promise<void> {
    this.closed = true;
    this.appended.emit('appended', 'everything');
    await this.listenerStarting?.catch(() => undefined);
    await this.listener?.end().catch(() => undefined);
    this.listener = undefined;
  }
}

function filterParams(filter?: EventFilter): { types: string[] | null; prefixes: string[] | null } {
  const types = filter?.eventTypes?.length ? filter.eventTypes : null;
  const prefixes = filter?.streamPrefixes?.length
    ? filter.streamPrefixes.map((p) => p.replace(/[\\%_]/g, (c) => `\\${c}`) + '%')
    : null;
  return { types, prefixes };
}

function toRecorded(row: EventRow): RecordedEvent {
  return {
    id: row.event_id,
    streamId: row.stream_id,
    type: row.event_type,
    revision: BigInt(row.revision),
    position: encodePosition(row.tx, row.seq),
    data: row.data,
    metadata: row.metadata,
    createdAt: row.created_at,
  };
}
