import { Client, Pool } from 'pg';
import { pgClientConfig, pgPoolConfig } from '../../database/db-connection';
import { databaseTargets } from '../../../test/support/test-database';
import { createTestDatabase } from '../../../test/support/test-database';
import { eventStoreContract, waitOrGiveUp } from '../event-store.contract';
import type { EventFilter, ReadMark } from '../event-store.port';
import { PostgresEventStore } from './postgres-event-store';

describe.each(databaseTargets())('PostgresEventStore contract on $label', (target) => {
  eventStoreContract(async () => {
    const db = await createTestDatabase(target);
    return { store: db.store, close: db.drop };
  });
});

describe.each(databaseTargets())('PostgresEventStore hearing appends on $label', (target) => {
  const meta = { correlationId: 'c', causationId: 'c', actor: 'tester', schemaVersion: 1 };

  /** A fresh database whose store listens already, and a second plain connection to it. */
  const withListeningStore = async (work: (store: PostgresEventStore, other: Client) => Promise<void>) => {
    const db = await createTestDatabase(target);
    const other = new Client(pgClientConfig(db.connection));
    await other.connect();
    try {
      await db.store.waitForAppend(0);
      await work(db.store, other);
    } finally {
      await other.end();
      await db.drop();
    }
  };

  /** Resolves once the store has heard `count` more notifications than `from`. */
  const heardUpTo = async (store: PostgresEventStore, from: number, count: number) => {
    const deadline = Date.now() + 10_000;
    while (store.readMark().heard < from + count && Date.now() < deadline) await new Promise((r) => setTimeout(r, 5));
    expect(store.readMark().heard).toBe(from + count);
  };

  /** A wait that records whether it has ended, aborted at the end of the test. */
  const watchWait = (store: PostgresEventStore, mark: ReadMark) => {
    const abort = new AbortController();
    const state = { woken: false };
    const ended = store.waitForAppend(600_000, abort.signal, mark).then(() => void (state.woken = true));
    return { state, ended, abort: () => abort.abort() };
  };

  it('an append whose notification arrived before the wait began ends the wait at once', async () => {
    const db = await createTestDatabase(target);
    try {
      const store = db.store as PostgresEventStore;
      await store.waitForAppend(0);
      const mark = store.readMark();
      expect(await store.readAll({ filter: { streamPrefixes: ['heard-'] }, mark })).toEqual([]);
      await store.append('heard-1', [{ type: 'Heard', data: {}, metadata: meta }], 'no_stream');
      // the notification comes and goes while nobody waits: only the count remembers it
      await heardUpTo(store, mark.heard, 1);
      expect(await waitOrGiveUp((signal) => store.waitForAppend(600_000, signal, mark))).toBe('woken');
    } finally {
      await db.drop();
    }
  });

  it('another connection\'s append wakes a waiter: appends of other hubs on the same database are heard', async () => {
    const db = await createTestDatabase(target);
    const otherPool = new Pool(pgPoolConfig(db.connection, 2));
    const other = new PostgresEventStore(otherPool, pgClientConfig(db.connection));
    try {
      const store = db.store;
      await store.waitForAppend(0);
      const mark = store.readMark();
      expect(await store.readAll({ filter: { streamPrefixes: ['heard-'] }, mark })).toEqual([]);
      const waiting = waitOrGiveUp((signal) => store.waitForAppend(600_000, signal, mark));
      await other.append('heard-2', [{ type: 'Heard', data: {}, metadata: meta }], 'no_stream');
      expect(await waiting).toBe('woken');
    } finally {
      await other.close();
      await otherPool.end();
      await db.drop();
    }
  });

  it('an event held back at a read behind an unrelated transaction is polled for, even if that transaction ends before the wait', () =>
    withListeningStore(async (store, blocker) => {
      await blocker.query('BEGIN');
      await blocker.query('SELECT pg_current_xact_id()'); // an xid older than the append's: the horizon stays behind it
      // taken before the append: its notification may arrive before the append's promise settles
      const before = store.readMark().heard;
      await store.append('held-1', [{ type: 'Held', data: {}, metadata: meta }], 'no_stream');
      await heardUpTo(store, before, 1);
      const mark = store.readMark(); // the append's notification is already counted in it
      expect(await store.readAll({ filter: { streamPrefixes: ['held-'] }, mark })).toHaveLength(0);
      expect(mark.heldBack).toBe(true);
      // the transaction's end notifies nobody, and it ends between the read and the wait
      await blocker.query('COMMIT');
      expect(await waitOrGiveUp((signal) => store.waitForAppend(600_000, signal, mark))).toBe('woken');
      const again = store.readMark(); // (held back or not now depends on other databases' transactions: the horizon is the cluster's)
      expect(await store.readAll({ filter: { streamPrefixes: ['held-'] }, mark: again })).toHaveLength(1);
    }));

  it('a waiter sleeps through appends its filter cannot match, also between its read and its wait, and wakes for one it can', () =>
    withListeningStore(async (store) => {
      const cases: { filter: EventFilter; theirs: { stream: string; type: string }; mine: { stream: string; type: string } }[] = [
        { filter: { streamPrefixes: ['mine-'] }, theirs: { stream: 'theirs-1', type: 'Same' }, mine: { stream: 'mine-1', type: 'Same' } },
        { filter: { eventTypes: ['Wanted'] }, theirs: { stream: 'typed-1', type: 'Unwanted' }, mine: { stream: 'typed-1', type: 'Wanted' } },
      ];
      for (const { filter, theirs, mine } of cases) {
        const mark = store.readMark(filter);
        expect(await store.readAll({ filter, mark })).toEqual([]);
        await store.append(theirs.stream, [{ type: theirs.type, data: {}, metadata: meta }]);
        await heardUpTo(store, mark.heard, 1);
        const wait = watchWait(store, mark);
        await store.append(theirs.stream, [{ type: theirs.type, data: {}, metadata: meta }]);
        await heardUpTo(store, mark.heard, 2);
        await new Promise((r) => setTimeout(r, 50));
        expect(wait.state.woken).toBe(false);
        await store.append(mine.stream, [{ type: mine.type, data: {}, metadata: meta }]);
        expect(await waitOrGiveUp(() => wait.ended)).toBe('woken');
        wait.abort();
      }
    }));

  it('a waiter whose read found events held back wakes for any append, whatever its filter: an older transaction ending may free them', () =>
    withListeningStore(async (store, blocker) => {
      await blocker.query('BEGIN');
      await blocker.query('SELECT pg_current_xact_id()'); // the horizon stays behind this transaction
      const before = store.readMark().heard;
      await store.append('held-2', [{ type: 'Held', data: {}, metadata: meta }], 'no_stream');
      await heardUpTo(store, before, 1);
      const filter = { streamPrefixes: ['held-'] };
      const mark = store.readMark(filter);
      expect(await store.readAll({ filter, mark })).toEqual([]);
      expect(mark.heldBack).toBe(true);
      const wait = watchWait(store, mark);
      await blocker.query('COMMIT');
      await store.append('theirs-3', [{ type: 'Other', data: {}, metadata: meta }]);
      await heardUpTo(store, mark.heard, 1);
      // well before the 500 ms poll that would end the wait anyway
      await new Promise((r) => setTimeout(r, 50));
      expect(wait.state.woken).toBe(true);
      wait.abort();
    }));

  it('a notification that is no append notice (a reset, an older hub) wakes every waiter, and so do more notices than are kept', () =>
    withListeningStore(async (store, other) => {
      const filter = { streamPrefixes: ['mine-'] };
      const mark = store.readMark(filter);
      expect(await store.readAll({ filter, mark })).toEqual([]);
      const wait = watchWait(store, mark);
      await other.query(`SELECT pg_notify('sendense_es_appended', 'reset some-projection')`);
      expect(await waitOrGiveUp(() => wait.ended)).toBe('woken');

      const old = store.readMark(filter);
      // distinct payloads: PostgreSQL delivers identical ones sent in one transaction once
      await other.query(`SELECT pg_notify('sendense_es_appended', json_build_object('s', json_build_array('theirs-' || g), 't', json_build_array('Same'))::text) FROM generate_series(1, 300) g`);
      await heardUpTo(store, old.heard, 300);
      // the mark is older than every notice kept: nothing tells what came between, so the waiter reads again
      expect(await waitOrGiveUp((signal) => store.waitForAppend(600_000, signal, old))).toBe('woken');
      const recent = store.readMark(filter);
      await other.query(`SELECT pg_notify('sendense_es_appended', $1)`, [JSON.stringify({ s: ['theirs-1'], t: ['Same'] })]);
      await heardUpTo(store, recent.heard, 1);
      const sleeper = watchWait(store, recent);
      await new Promise((r) => setTimeout(r, 50));
      expect(sleeper.state.woken).toBe(false);
      sleeper.abort();
    }));

  it('losing the LISTEN connection wakes the waiters counting on it, and waits poll until it is back', () =>
    withListeningStore(async (store, admin) => {
      const mark = store.readMark();
      expect(await store.readAll({ filter: { streamPrefixes: ['none-'] }, mark })).toEqual([]);
      const waiting = waitOrGiveUp((signal) => store.waitForAppend(600_000, signal, mark));
      await new Promise((r) => setTimeout(r, 100));
      const killed = await admin.query(`SELECT pg_terminate_backend(pid) AS ok FROM pg_stat_activity WHERE datname = current_database() AND query = 'LISTEN sendense_es_appended'`);
      expect(killed.rows).toEqual([{ ok: true }]);
      expect(await waiting).toBe('woken');
      // the next wait rebuilds the listener, which counts as heard: the caller reads again before sleeping
      expect(await waitOrGiveUp((signal) => store.waitForAppend(600_000, signal, store.readMark()))).toBe('woken');
    }));
});

describe.each(databaseTargets())('PostgresEventStore searches on $label', (target) => {
  const meta = { correlationId: 'c', causationId: 'c', actor: 'tester', schemaVersion: 1 };

  it('a search by VM alone reads the index on data.vmId, not every event in order until a page is found', async () => {
    const db = await createTestDatabase(target);
    try {
      // 20,000 events of 50 busy VMs, and 3 of a quiet one written first: without the index, its page is read
      // by walking the store in order and filtering every event
      await db.store.append('vm-quiet', [1, 2, 3].map((n) => ({ type: 'Seen', data: { vmId: 'quiet', n }, metadata: meta })));
      for (let batch = 0; batch < 20; batch++) {
        await db.store.append(`busy-${batch}`, Array.from({ length: 1000 }, (_, n) => ({ type: 'Seen', data: { vmId: `busy-${n % 50}`, n }, metadata: meta })));
      }
      await db.pool.query('ANALYZE es_events');
      const query = jest.spyOn(db.pool, 'query');
      const found = await db.store.searchEvents({ vmId: 'quiet', maxCount: 100 });
      const [sql, params] = query.mock.calls.at(-1) as unknown as [string, unknown[]];
      query.mockRestore();
      expect(found.map((e) => e.data)).toEqual([1, 2, 3].map((n) => ({ vmId: 'quiet', n })));
      const plan = JSON.stringify((await db.pool.query(`EXPLAIN (FORMAT JSON) ${sql}`, params)).rows);
      expect(plan).toContain('"Index Name":"es_events_vm"');
    } finally {
      await db.drop();
    }
  });
});
