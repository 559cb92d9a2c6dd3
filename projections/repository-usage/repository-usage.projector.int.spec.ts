import { randomUUID } from 'node:crypto';
import { pgClientConfig } from '../../src/database/db-connection';
import type { RecordedEvent } from '../../src/event-store/event-store.port';
import { ensureCheckpointRow, ProjectionRunner, resetProjection } from '../../src/projection-runner/projection-runner';
import {
  chainStream,
  RESTORE_POINT_ADDED,
  RESTORE_POINT_DELETE_STARTED,
  RESTORE_POINT_DELETED,
  RESTORE_POINT_MERGED,
  RESTORE_POINT_RECYCLED,
  RESTORE_POINT_SYNCED,
  RESTORE_POINT_UNDELETED,
  RESTORE_POINT_VERIFIED,
} from '../../src/restore-points/chain.events';
import { REPOSITORY_CHUNKS_MEASURED, repositoryStream } from '../../src/repositories/registry/repository.events';
import { createTestDatabase, TestDatabase } from '../../test/support/test-database';
import { RepositoryUsageProjector } from './repository-usage.projector';
import { usageOf } from './repository-usage.queries';

const meta = { correlationId: 'c', causationId: 'c', actor: 'tester', schemaVersion: 1 };
const R1 = '11111111-1111-4111-8111-111111111111';
const R2 = '22222222-2222-4222-8222-222222222222';
const GiB = 2 ** 30;

const disks = (...fileBytes: number[]) => fileBytes.map((b, i) => ({ diskId: `disk${i}`, file: `f${i}-${b}`, parentFile: null, virtualSize: 10 * GiB, fileBytes: b, changeRef: null }));
const point = (restorePointId: string, parentId: string | null, fileBytes: number[], vmId = 'vm1', repositoryId = R1) => ({
  restorePointId,
  vmId,
  repositoryId,
  backupId: null,
  type: parentId ? 'incremental' : 'full',
  parentId,
  createdAt: '2025-01-01T00:00:00Z',
  disks: disks(...fileBytes),
});

describe('repository usage projector (real PostgreSQL)', () => {
  let db: TestDatabase;
  const projector = new RepositoryUsageProjector();
  const event = (type: string, data: Record<string, unknown>, at: string, vmId = 'vm1', repositoryId = R1): RecordedEvent =>
    ({ id: randomUUID(), streamId: chainStream(vmId, repositoryId), type, revision: 0n, position: '', data, metadata: meta, createdAt: new Date(at) }) as RecordedEvent;
  const apply = (...events: RecordedEvent[]) =>
    db.dataSource.transaction(async (m) => {
      for (const e of events) await projector.apply(e, m);
    });
  const points = async () =>
    Object.fromEntries(((await db.dataSource.query(`SELECT restore_point_id, parent_id, bytes FROM rm_repository_point_bytes ORDER BY restore_point_id`)) as { restore_point_id: string; parent_id: string | null; bytes: string }[]).map((r) => [r.restore_point_id, [r.parent_id, Number(r.bytes)]]));
  const history = async (repositoryId: string) =>
    ((await db.dataSource.query(`SELECT hour, at, used_bytes FROM rm_repository_usage WHERE repository_id = $1 ORDER BY hour`, [repositoryId])) as { hour: Date; at: Date; used_bytes: string }[]).map((r) => [r.hour.toISOString(), r.at.toISOString(), Number(r.used_bytes)]);

  beforeEach(async () => {
    db = await createTestDatabase();
  });
  afterEach(async () => {
    await db.drop();
  });

  it("adds, merges and deletes: each point's bytes and the repository's total after each change, one row an hour updated in place", async () => {
    await apply(
      event(RESTORE_POINT_ADDED, point('rp1', null, [100, 50]), '2025-03-01T10:05:00Z'),
      event(RESTORE_POINT_ADDED, point('rp2', 'rp1', [20]), '2025-03-01T10:40:00Z'),
      event(RESTORE_POINT_ADDED, point('rp3', 'rp2', [30]), '2025-03-01T11:10:00Z'),
      // another repository's points are its own, a synced point as well as a backed-up one
      event(RESTORE_POINT_ADDED, point('other1', null, [1000], 'vm2', R2), '2025-03-01T11:20:00Z', 'vm2', R2),
      event(RESTORE_POINT_SYNCED, { ...point('other2', 'other1', [7], 'vm2', R2), synced: { remoteId: 'x', syncJobId: 'y', runId: 'z', sourceRepositoryId: R1, sourceBackupId: null, bytesReceived: 7 } }, '2025-03-01T11:25:00Z', 'vm2', R2),
    );
    expect(await history(R1)).toEqual([
      ['2025-03-01T10:00:00.000Z', '2025-03-01T10:40:00.000Z', 170],
      ['2025-03-01T11:00:00.000Z', '2025-03-01T11:10:00.000Z', 200],
    ]);
    expect(await history(R2)).toEqual([['2025-03-01T11:00:00.000Z', '2025-03-01T11:25:00.000Z', 1007]]);

    // a recycled point's files stay until it is purged; a verify changes no file
    await apply(
      event(RESTORE_POINT_RECYCLED, { restorePointId: 'rp3', recycledAt: '2025-03-01T12:00:00Z', purgeAfter: '2025-03-08T12:00:00Z', by: 'admin', reason: 'r' }, '2025-03-01T12:00:00Z'),
      event(RESTORE_POINT_UNDELETED, { restorePointId: 'rp3', by: 'admin' }, '2025-03-01T12:30:00Z'),
      event(RESTORE_POINT_VERIFIED, { restorePointId: 'rp3', ok: true, problems: [], warnings: [] }, '2025-03-01T12:40:00Z'),
      event(RESTORE_POINT_DELETE_STARTED, { restorePointId: 'rp1', strategy: 'merge-into-child', childId: 'rp2', parentId: null }, '2025-03-01T12:59:00Z'),
    );
    expect((await history(R1)).length).toBe(2);

    // the oldest merged into its child, which becomes a full holding both
    await apply(event(RESTORE_POINT_MERGED, { restorePointId: 'rp1', intoId: 'rp2', disks: disks(120, 60) }, '2025-03-01T13:00:00Z'));
    expect(await points()).toEqual({ rp2: [null, 180], rp3: ['rp2', 30], other1: [null, 1000], other2: ['other1', 7] });

    // a middle point removed: its child rebased onto its parent, with the files the delete rewrote
    await apply(
      event(RESTORE_POINT_ADDED, point('rp4', 'rp3', [10]), '2025-03-01T14:00:00Z'),
      event(RESTORE_POINT_DELETED, { restorePointId: 'rp3', strategy: 'remove-middle', childDisks: disks(35) }, '2025-03-01T14:30:00Z'),
    );
    expect(await points()).toMatchObject({ rp2: [null, 180], rp4: ['rp2', 35] });
    // the newest removed: no child to rewrite
    await apply(event(RESTORE_POINT_DELETED, { restorePointId: 'rp4', strategy: 'remove-newest', childDisks: null }, '2025-03-01T15:00:00Z'));
    expect(await points()).toEqual({ rp2: [null, 180], other1: [null, 1000], other2: ['other1', 7] });
    const expected = [
      ['2025-03-01T10:00:00.000Z', '2025-03-01T10:40:00.000Z', 170],
      ['2025-03-01T11:00:00.000Z', '2025-03-01T11:10:00.000Z', 200],
      ['2025-03-01T13:00:00.000Z', '2025-03-01T13:00:00.000Z', 210],
      ['2025-03-01T14:00:00.000Z', '2025-03-01T14:30:00.000Z', 215],
      ['2025-03-01T15:00:00.000Z', '2025-03-01T15:00:00.000Z', 180],
    ];
    expect(await history(R1)).toEqual(expected);

    // delivered again, an event changes nothing: a total is summed, never carried
    await apply(
      event(RESTORE_POINT_DELETED, { restorePointId: 'rp4', strategy: 'remove-newest', childDisks: null }, '2025-03-01T15:00:00Z'),
      event(RESTORE_POINT_ADDED, point('rp2', 'rp1', [20]), '2025-03-01T10:40:00Z'),
    );
    expect(await points()).toEqual({ rp2: [null, 180], other1: [null, 1000], other2: ['other1', 7] });
    expect(await history(R1)).toEqual(expected);
    expect(await history(R2)).toEqual([['2025-03-01T11:00:00.000Z', '2025-03-01T11:25:00.000Z', 1007]]);
  });

  it("rebuilt from zero by the projection runner: both tables emptied, then the same rows, each sample at its event's own time", async () => {
    const stream = chainStream('vm1', R1);
    const events = [
      { type: RESTORE_POINT_ADDED, data: point('rp1', null, [GiB]) },
      { type: RESTORE_POINT_ADDED, data: point('rp2', 'rp1', [GiB / 4]) },
      { type: RESTORE_POINT_DELETE_STARTED, data: { restorePointId: 'rp1', strategy: 'merge-into-child', childId: 'rp2', parentId: null } },
      { type: RESTORE_POINT_MERGED, data: { restorePointId: 'rp1', intoId: 'rp2', disks: disks(GiB + GiB / 8) } },
    ];
    await db.store.append(stream, events.map((e) => ({ ...e, metadata: meta })));
    const runner = new ProjectionRunner(projector, db.store, db.dataSource, pgClientConfig(db.connection));
    try {
      await ensureCheckpointRow(db.dataSource, projector.name);
      expect(await runner.runBatch()).toBe(4);
      const rows = { points: await points(), history: await history(R1) };
      expect(rows.points).toEqual({ rp2: [null, GiB + GiB / 8] });
      const merged = (await db.store.readStream(stream)).at(-1)!;
      expect(rows.history.at(-1)).toEqual([expect.any(String), merged.createdAt.toISOString(), GiB + GiB / 8]);

      await resetProjection(db.dataSource, projector);
      expect({ points: await points(), history: await history(R1) }).toEqual({ points: {}, history: [] });
      expect(await runner.runBatch()).toBe(4);
      expect({ points: await points(), history: await history(R1) }).toEqual(rows);
    } finally {
      await runner.stop();
    }
  });

  it('usage: the bytes now, the samples of the days asked for, and the estimate from the last 30 days whatever they are', async () => {
    const now = new Date('2025-03-31T12:00:00Z');
    const daysAgo = (d: number) => new Date(now.getTime() - d * 86_400_000).toISOString();
    // a point of 1 GiB a day for 40 days, one a day: the repository grows by 1 GiB a day
    const added: RecordedEvent[] = [];
    for (let d = 40; d >= 1; d--) added.push(event(RESTORE_POINT_ADDED, point(`rp-${d}`, d === 40 ? null : `rp-${d + 1}`, [GiB]), daysAgo(d)));
    await apply(...added);

    const usage = await usageOf(db.dataSource, R1, null, 10 * GiB, now, 7);
    expect(usage.pointsBytes).toBe(40 * GiB);
    expect(usage.samples.map((s) => [s.at.toISOString(), s.usedBytes])).toEqual([7, 6, 5, 4, 3, 2, 1].map((d) => [daysAgo(d), (41 - d) * GiB]));
    expect(usage.growthBytesPerDay! / GiB).toBeGreaterThan(0.95);
    expect(usage.growthBytesPerDay! / GiB).toBeLessThan(1.05);
    // 10 GiB free at about 1 GiB a day
    expect(Math.abs(Date.parse(usage.estimatedFullAt!) - Date.parse(daysAgo(-10))) / 86_400_000).toBeLessThan(0.6);
    expect((await usageOf(db.dataSource, R1, null, 10 * GiB, now, 365)).samples).toHaveLength(40);
    expect(await usageOf(db.dataSource, R1, null, 10 * GiB, now, 365)).toMatchObject({ growthBytesPerDay: usage.growthBytesPerDay, estimatedFullAt: usage.estimatedFullAt });
    expect(await usageOf(db.dataSource, R1, null, null, now)).toMatchObject({ growthBytesPerDay: usage.growthBytesPerDay, estimatedFullAt: null });

    // two months without a change: the total as the 30 days began and the total now, a flat line
    const later = new Date(now.getTime() + 60 * 86_400_000);
    expect(await usageOf(db.dataSource, R1, null, 10 * GiB, later)).toEqual({ pointsBytes: 40 * GiB, samples: [], growthBytesPerDay: 0, estimatedFullAt: null });

    // an unknown repository, or a tenant that owns none of its VMs: nothing, and no history of anyone else's
    expect(await usageOf(db.dataSource, R2, null, 10 * GiB, now)).toEqual({ pointsBytes: 0, samples: [], growthBytesPerDay: null, estimatedFullAt: null });
    expect(await usageOf(db.dataSource, R1, 'acme', 10 * GiB, now)).toEqual({ pointsBytes: 0, samples: [], growthBytesPerDay: null, estimatedFullAt: null });
  });

  it("a chunks repository's total is its store as last measured, not its points' index files: history, growth and estimate follow the store", async () => {
    const now = new Date('2025-03-31T12:00:00Z');
    const daysAgo = (d: number) => new Date(now.getTime() - d * 86_400_000).toISOString();
    // 20 days: each day a point whose index is 1 MiB, and a store that grows by 2 GiB a day
    const measured = (storedBytes: number, at: string): RecordedEvent =>
      ({ id: randomUUID(), streamId: repositoryStream(R1), type: REPOSITORY_CHUNKS_MEASURED, revision: 0n, position: '', data: { repositoryId: R1, storedBytes, liveBytes: storedBytes }, metadata: meta, createdAt: new Date(at) }) as RecordedEvent;
    const events: RecordedEvent[] = [];
    for (let d = 20; d >= 1; d--) {
      events.push(event(RESTORE_POINT_ADDED, point(`rp-${d}`, d === 20 ? null : `rp-${d + 1}`, [2 ** 20]), daysAgo(d)));
      events.push(measured((21 - d) * 2 * GiB, daysAgo(d)));
    }
    await apply(events[0]);
    // before any measurement: the index files, as for any repository
    expect((await history(R1)).map(([, , bytes]) => bytes)).toEqual([2 ** 20]);
    await apply(...events.slice(1));
    expect((await history(R1)).map(([, at, bytes]) => [at, bytes])).toEqual([20, 19, 18, 17, 16, 15, 14, 13, 12, 11, 10, 9, 8, 7, 6, 5, 4, 3, 2, 1].map((d) => [daysAgo(d), (21 - d) * 2 * GiB]));
    const usage = await usageOf(db.dataSource, R1, null, 20 * GiB, now);
    expect(usage.pointsBytes).toBe(40 * GiB);
    expect(usage.growthBytesPerDay! / GiB).toBeGreaterThan(1.9);
    expect(usage.growthBytesPerDay! / GiB).toBeLessThan(2.1);
    expect(Math.abs(Date.parse(usage.estimatedFullAt!) - Date.parse(daysAgo(-10))) / 86_400_000).toBeLessThan(0.6);

    // a collection shrinks the store; the same measurement delivered again writes nothing
    await apply(measured(30 * GiB, daysAgo(0.5)));
    const after = await history(R1);
    expect(after.at(-1)).toEqual([expect.any(String), daysAgo(0.5), 30 * GiB]);
    await apply(measured(30 * GiB, daysAgo(0.25)));
    expect(await history(R1)).toEqual(after);
    expect((await usageOf(db.dataSource, R1, null, 20 * GiB, now)).pointsBytes).toBe(30 * GiB);
    // another repository's store is its own
    expect((await usageOf(db.dataSource, R2, null, 20 * GiB, now)).pointsBytes).toBe(0);
  });

  it('keeps a year of history and the total as that year began: older samples go as new ones come, a replay the same', async () => {
    const day = (d: number) => new Date(Date.parse('2024-01-01T10:00:00Z') + d * 86_400_000).toISOString();
    const added = [0, 100, 400, 800].map((d, i) => event(RESTORE_POINT_ADDED, point(`rp${d}`, i ? `rp${[0, 100, 400, 800][i - 1]}` : null, [GiB]), day(d)));
    await apply(...added.slice(0, 3));
    // day 400: day 0 is more than 366 days old but is the total as the year began; day 100 is inside the year
    expect((await history(R1)).map(([hour, , bytes]) => [hour, Number(bytes) / GiB])).toEqual([
      [day(0), 1],
      [day(100), 2],
      [day(400), 3],
    ]);
    await apply(added[3]);
    expect((await history(R1)).map(([hour, , bytes]) => [hour, Number(bytes) / GiB])).toEqual([
      [day(400), 3],
      [day(800), 4],
    ]);
    const year = await usageOf(db.dataSource, R1, null, null, new Date(day(801)), 365);
    expect(year.samples.map((s) => [s.at.toISOString(), s.usedBytes / GiB])).toEqual([[day(800), 4]]);

    // applied again from nothing, as a rebuild applies them
    await db.dataSource.query(`TRUNCATE rm_repository_point_bytes, rm_repository_usage, rm_repository_stored_bytes`);
    await apply(...added);
    expect((await history(R1)).map(([hour, , bytes]) => [hour, Number(bytes) / GiB])).toEqual([
      [day(400), 3],
      [day(800), 4],
    ]);
  });
});
