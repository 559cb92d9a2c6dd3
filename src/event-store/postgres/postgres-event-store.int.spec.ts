import { Client, Pool } from 'pg';
import { pgClientConfig, pgPoolConfig } from '../../database/db-connection';
import { databaseTargets } from '../../../test/support/test-database';
import { createTestDatabase } from '../../../test/support/test-database';
import { eventStoreContract, waitOrGiveUp } from '../event-store.contract';
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

  it('an append whose notification arrived before the wait began ends the wait at once', async () => {
    const db = await createTestDatabase(target);
    try {
      const store = db.store as PostgresEventStore;
      await store.waitForAppend(0);
      const mark = store.readMark();
      expect(await store.readAll({ filter: { streamPrefixes: ['heard-'] }, mark })).toEqual([]);
      await store.append('heard-1', [{ type: 'Heard', data: {}, metadata: meta }], 'no_stream');
      // the notification comes and goes while nobody waits: only the count remembers it
      const deadline = Date.now() + 10_000;
      while (store.readMark().heard === mark.heard && Date.now() < deadline) await new Promise((r) => setTimeout(r, 5));
      expect(store.readMark().heard).not.toBe(mark.heard);
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
      await store.append('held-1', [{ type: 'Held', data: {}, metadata: meta }], 'no_stream');
      const deadline = Date.now() + 10_000;
      const heard = store.readMark().heard;
      while (store.readMark().heard === heard && Date.now() < deadline) await new Promise((r) => setTimeout(r, 5));
      const mark = store.readMark(); // the append's notification is already counted in it
      expect(await store.readAll({ filter: { streamPrefixes: ['held-'] }, mark })).toHaveLength(0);
      expect(mark.heldBack).toBe(true);
      // the transaction's end notifies nobody, and it ends between the read and the wait
      await blocker.query('COMMIT');
      expect(await waitOrGiveUp((signal) => store.waitForAppend(600_000, signal, mark))).toBe('woken');
      const again = store.readMark(); // (held back or not now depends on other databases' transactions: the horizon is the cluster's)
      expect(await store.readAll({ filter: { streamPrefixes: ['held-'] }, mark: again })).toHaveLength(1);
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

