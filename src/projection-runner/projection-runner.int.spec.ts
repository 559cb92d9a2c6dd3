import { execFile } from 'node:child_process';
import { existsSync } from 'node:fs';
import { join } from 'node:path';
import { ApiTokensProjector } from '../../projections/api-tokens/api-tokens.projector';
import { createTestDatabase, databaseTargets, TestDatabase } from '../../test/support/test-database';
import { BatchCounterProjector, COUNTER_TABLE_SQL, CounterProjector } from '../../test/support/counter-projector';
import { pgClientConfig } from '../database/db-connection';
import { API_TOKEN_ISSUED, API_TOKEN_REVOKED } from '../auth/tokens/api-token.events';
import { AdvisoryLocks } from './advisory-locks';
import { ensureCheckpointRow, ProjectionRunner, readCheckpoint, resetProjection } from './projection-runner';
import { ProjectionsService } from './projections.service';
import { Projector } from './projector';

const CRASH_CHILD = join(__dirname, '../../dist/test/support/projection-crash-child.js');
const meta = { correlationId: 'c', causationId: 'c', actor: 'tester', schemaVersion: 1 };

describe.each(databaseTargets())('ProjectionRunner on $label', (target) => {
  let db: TestDatabase;
  const runners: ProjectionRunner[] = [];

  beforeEach(async () => {
    db = await createTestDatabase(target);
    await db.dataSource.query(COUNTER_TABLE_SQL);
  });
  afterEach(async () => {
    await Promise.all(runners.splice(0).map((r) => r.stop()));
    await db.drop();
  });

  const runner = (projector: Projector, batchSize = 10) => {
    const r = new ProjectionRunner(projector, db.store, db.dataSource, pgClientConfig(db.connection), {
      batchSize,
      idleWaitMs: 50,
      standbyRetryMs: 50,
    });
    runners.push(r);
    r.start();
    return r;
  };

  const appendCounters = async (count: number, from = 1) => {
    for (let i = from; i < from + count; i++) {
      await db.store.append(`counter-${i % 7}`, [{ type: 'Counted', data: { n: i }, metadata: meta }], 'any');
    }
  };

  const counters = async () =>
    (await db.dataSource.query(`SELECT n, applied FROM test_counter ORDER BY n`)) as { n: number; applied: number }[];

  const waitFor = async (check: () => Promise<boolean>, timeoutMs = 15_000) => {
    const deadline = Date.now() + timeoutMs;
    while (!(await check())) {
      if (Date.now() > deadline) throw new Error('timed out');
      await new Promise((r) => setTimeout(r, 25));
    }
  };

  /** A runner that, caught up, may sleep ten minutes unless something wakes it. */
  const sleepyRunner = () => {
    const r = new ProjectionRunner(new CounterProjector(), db.store, db.dataSource, pgClientConfig(db.connection), { idleWaitMs: 600_000, standbyRetryMs: 50 });
    runners.push(r);
    r.start();
  };

  it('a caught-up runner that may sleep ten minutes is woken by the next append', async () => {
    sleepyRunner();
    await appendCounters(1);
    await waitFor(async () => (await counters()).length === 1, 10_000);
    await appendCounters(1, 2);
    await waitFor(async () => (await counters()).length === 2, 10_000);
  });

  it('a reset wakes a caught-up runner that may sleep ten minutes, and it replays', async () => {
    sleepyRunner();
    await appendCounters(3);
    await waitFor(async () => (await counters()).length === 3, 10_000);
    await new Promise((r) => setTimeout(r, 200)); // asleep by now
    await resetProjection(db.dataSource, new CounterProjector());
    await waitFor(async () => (await readCheckpoint(db.dataSource, 'test-counter')) !== null, 10_000);
    await waitFor(async () => (await counters()).length === 3, 10_000);
  });

  it('a SIGKILL inside a batch (its checkpoint moved and some rows written, nothing committed) never applies an event twice', async () => {
    expect(existsSync(CRASH_CHILD)).toBe(true);
    await appendCounters(25);
    const exit = await new Promise<string | null>((resolve) => {
      execFile(process.execPath, [CRASH_CHILD], { env: { ...process.env, CRASH_DB: JSON.stringify(db.connection), CRASH_AT_N: '15' } }, (error) =>
        resolve((error as { signal?: string } | null)?.signal ?? null),
      );
    });
    expect(exit).toBe('SIGKILL');
    // Batches 1-10 committed; the crashed batch (11-20) left neither rows nor a checkpoint.
    expect((await counters()).map((c) => c.n)).toEqual([1, 2, 3, 4, 5, 6, 7, 8, 9, 10]);

    runner(new CounterProjector());
    await waitFor(async () => (await counters()).length === 25);
    const rows = await counters();
    expect(rows.map((c) => c.n)).toEqual(Array.from({ length: 25 }, (_, i) => i + 1));
    expect(rows.every((c) => c.applied === 1)).toBe(true);
  });

  it('a SIGKILL after a whole batch was written in one statement, before its commit, never applies an event twice', async () => {
    await appendCounters(25);
    const exit = await new Promise<string | null>((resolve) => {
      execFile(process.execPath, [CRASH_CHILD], { env: { ...process.env, CRASH_DB: JSON.stringify(db.connection), CRASH_AT_N: '15', CRASH_APPLY: 'batch' } }, (error) =>
        resolve((error as { signal?: string } | null)?.signal ?? null),
      );
    });
    expect(exit).toBe('SIGKILL');
    // Events 11-20 were all in the table inside the crashed transaction: none of them stayed.
    expect((await counters()).map((c) => c.n)).toEqual([1, 2, 3, 4, 5, 6, 7, 8, 9, 10]);

    runner(new BatchCounterProjector(), 8);
    await waitFor(async () => (await counters()).length === 25);
    const rows = await counters();
    expect(rows.map((c) => c.n)).toEqual(Array.from({ length: 25 }, (_, i) => i + 1));
    expect(rows.every((c) => c.applied === 1)).toBe(true);
  });

  it("a runner that knows its checkpoint does not read it before a batch, and one moved under it (another runner applied meanwhile) is found by the batch's own UPDATE: nothing applied twice", async () => {
    const idle = () => new ProjectionRunner(new CounterProjector(), db.store, db.dataSource, pgClientConfig(db.connection), { batchSize: 100 });
    const [a, b] = [idle(), idle()];
    runners.push(a, b);
    await ensureCheckpointRow(db.dataSource, 'test-counter');
    const checkpointReads = () => query.mock.calls.filter(([sql]) => /^SELECT position FROM projection_checkpoints/.test(String(sql))).length;
    const query = jest.spyOn(db.dataSource, 'query');
    await appendCounters(5);
    expect(await a.runBatch()).toBe(5);
    expect(checkpointReads()).toBe(1);
    await appendCounters(5, 6);
    expect(await a.runBatch()).toBe(5);
    expect(checkpointReads()).toBe(1);
    // b, which has never run, reads the checkpoint and applies what came since
    await appendCounters(5, 11);
    expect(await b.runBatch()).toBe(5);
    await appendCounters(5, 16);
    expect(await a.runBatch()).toBe(5);
    expect(checkpointReads()).toBe(3);
    expect((await counters()).map((c) => [c.n, c.applied])).toEqual(Array.from({ length: 20 }, (_, i) => [i + 1, 1]));
    expect(await readCheckpoint(db.dataSource, 'test-counter')).toBe(a.status().position);
  });

  it('a checkpoint row deleted under a leading runner is reported (rebuild it), and nothing is applied twice or looped over silently', async () => {
    const r = runner(new CounterProjector());
    await appendCounters(5);
    await waitFor(async () => (await counters()).length === 5);
    await db.dataSource.query(`DELETE FROM projection_checkpoints WHERE name = 'test-counter'`);
    await appendCounters(5, 6);
    await waitFor(async () => /has no checkpoint row: rebuild it/.test(r.status().lastError ?? ''));
    expect(r.status().failingSince).not.toBeNull();
    expect((await counters()).map((c) => [c.n, c.applied])).toEqual(Array.from({ length: 5 }, (_, i) => [i + 1, 1]));
  });

  it('two runners on one database: one leads, every event is applied exactly once, the other takes over', async () => {
    const a = runner(new CounterProjector());
    const b = runner(new CounterProjector());
    await appendCounters(40);
    await waitFor(async () => (await counters()).length === 40);
    expect([a.status().leader, b.status().leader].filter(Boolean)).toHaveLength(1);
    const [leader, standby] = a.status().leader ? [a, b] : [b, a];
    await leader.stop();
    await appendCounters(10, 41);
    await waitFor(async () => (await counters()).length === 50);
    expect(standby.status().leader).toBe(true);
    expect((await counters()).every((c) => c.applied === 1)).toBe(true);
  });

  it("a hub's runners share one lock session, the standby's too; when a session drops, each projection is led by one hub and applied once", async () => {
    const sessions = async (name: string) => Number((await db.dataSource.query(`SELECT count(*) AS n FROM pg_stat_activity WHERE application_name = $1`, [name]))[0].n);
    const hubs = ['hub-a-locks', 'hub-b-locks'].map((name) => new AdvisoryLocks(pgClientConfig(db.connection), name));
    const on = (locks: AdvisoryLocks) =>
      [new CounterProjector(), new ApiTokensProjector()].map((p) => {
        const r = new ProjectionRunner(p, db.store, db.dataSource, locks, { batchSize: 10, idleWaitMs: 50, standbyRetryMs: 50 });
        runners.push(r);
        r.start();
        return r;
      });
    try {
      const a = on(hubs[0]);
      await waitFor(async () => a.every((r) => r.status().leader));
      const b = on(hubs[1]);
      // the standby asks again every 50 ms: on its one session, not a connection per question
      await new Promise((r) => setTimeout(r, 300));
      expect(b.map((r) => r.status().leader)).toEqual([false, false]);
      expect([await sessions('hub-a-locks'), await sessions('hub-b-locks')]).toEqual([1, 1]);

      await db.dataSource.query(`SELECT pg_terminate_backend(pid) FROM pg_stat_activity WHERE application_name = 'hub-a-locks'`);
      // hub A notices that its locks went with its session; whichever hub asks first leads each projection again
      await waitFor(async () => a.every((r, i) => r.status().leader !== b[i].status().leader));
      await appendCounters(20);
      await waitFor(async () => (await counters()).length === 20);
      expect((await counters()).every((c) => c.applied === 1)).toBe(true);
      expect(a.every((r, i) => r.status().leader !== b[i].status().leader)).toBe(true);
    } finally {
      await Promise.all(runners.splice(0).map((r) => r.stop()));
      for (const locks of hubs) await locks.close();
    }
  });

  it('a projector that cannot apply an event: failing since its first failed try, the same through its retries; cleared once it applies; reported stuck by health after a minute', async () => {
    let poisoned = true;
    const projector: Projector = {
      name: 'poisoned',
      filter: { streamPrefixes: ['poison-'] },
      tables: [],
      apply: async () => {
        if (poisoned) throw new Error('cannot apply this event');
      },
    };
    const projections = new ProjectionsService([projector], db.store, db.connection, db.dataSource);
    projections.onModuleInit();
    try {
      await db.store.append('poison-1', [{ type: 'Poison', data: {}, metadata: meta }], 'no_stream');
      const stuck = () => projections.stuck(new Date(Date.now() + 61_000), 60_000);
      await waitFor(async () => stuck().length === 1);
      const [first] = stuck();
      expect(first).toMatchObject({ name: 'poisoned', error: 'cannot apply this event' });
      // retried (backing off) without moving its start, and not stuck before a minute has passed
      await new Promise((r) => setTimeout(r, 400));
      expect(stuck()[0].since).toEqual(first.since);
      expect(projections.stuck(new Date(), 60_000)).toEqual([]);
      poisoned = false;
      await waitFor(async () => stuck().length === 0);
      expect((await projections.list())[0]).toMatchObject({ name: 'poisoned', lastError: null });
    } finally {
      await projections.onApplicationShutdown();
    }
  });

  it('a read model rebuilt from zero equals the live one', async () => {
    const projector = new ApiTokensProjector();
    const r = runner(projector, 3);
    let head = '';
    for (let i = 0; i < 12; i++) {
      const tokenId = `00000000-0000-4000-8000-${String(i).padStart(12, '0')}`;
      head = (await db.store.append(`api-token-${tokenId}`, [{ type: API_TOKEN_ISSUED, data: { tokenId, name: `t${i}`, tokenHash: `h${i}` }, metadata: meta }], 'no_stream')).position;
      if (i % 3 === 0) head = (await db.store.append(`api-token-${tokenId}`, [{ type: API_TOKEN_REVOKED, data: { tokenId, name: `t${i}` }, metadata: meta }], 0n)).position;
    }
    // Not readAll(): while the runner's own batch transaction is open, the newest appends are (rightly) not visible yet.
    await waitFor(async () => (await readCheckpoint(db.dataSource, projector.name)) === head);
    const live = await db.dataSource.query(`SELECT * FROM rm_api_tokens ORDER BY token_id`);
    expect(live).toHaveLength(12);

    await resetProjection(db.dataSource, projector);
    expect(await db.dataSource.query(`SELECT * FROM rm_api_tokens`)).toEqual([]);
    await waitFor(async () => (await readCheckpoint(db.dataSource, projector.name)) === head);
    expect(await db.dataSource.query(`SELECT * FROM rm_api_tokens ORDER BY token_id`)).toEqual(live);
    expect(r.status().lastError).toBeNull();
  });
});
