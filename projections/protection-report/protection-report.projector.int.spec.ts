import { randomUUID } from 'node:crypto';
import { ProtectionStreaks1763771800000 } from '../../migrations/1763771800000-protection-streaks';
import { ProtectionSyntheticFulls1763772700000 } from '../../migrations/1763772700000-protection-synthetic-fulls';
import { ProtectionCorrupt1763773200000 } from '../../migrations/1763773200000-protection-corrupt';
import { VM_INVENTORY_REPORTED } from '../../src/agents/agent.events';
import { ProtectionReportQuery } from '../../src/policies/reports/queries/protection-report.query';
import { RESTORE_POINT_ADDED, RESTORE_POINT_CORRUPTED, RESTORE_POINT_DELETE_FAILED, RESTORE_POINT_VERIFIED } from '../../src/restore-points/chain.events';
import { BACKUP_COMPLETED, BACKUP_FAILED, BACKUP_REQUESTED, BACKUP_STARTED, BACKUP_TYPE_DECIDED, backupStream } from '../../src/backups/backup.events';
import type { RecordedEvent } from '../../src/event-store/event-store.port';
import { createTestDatabase, TestDatabase } from '../../test/support/test-database';
import { ProtectionReportProjector } from './protection-report.projector';
import { ProtectionReportHandler } from './protection-report.queries';

const meta = { correlationId: 'c', causationId: 'c', actor: 'tester', schemaVersion: 1 };

describe('protection report projector: failures in a row (real PostgreSQL)', () => {
  let db: TestDatabase;
  const projector = new ProtectionReportProjector();
  let clock = Date.parse('2024-05-01T00:00:00Z');
  const event = (type: string, data: Record<string, unknown>): RecordedEvent =>
    ({ id: randomUUID(), streamId: `backup-${String(data.jobId)}`, type, revision: 0n, position: '', data, metadata: meta, createdAt: new Date((clock += 60_000)) }) as RecordedEvent;
  const apply = (...events: RecordedEvent[]) => db.dataSource.transaction(async (m) => {
    for (const e of events) await projector.apply(e, m);
  });
  /** A job of `vmId` requested and finished as `outcome`; its finishing event is returned so a test can apply it again. */
  const job = async (vmId: string, outcome: 'completed' | 'failed'): Promise<RecordedEvent> => {
    const jobId = randomUUID();
    const finished = outcome === 'completed' ? event(BACKUP_COMPLETED, { jobId, restorePointId: `rp-${jobId}`, bytesWritten: 1 }) : event(BACKUP_FAILED, { jobId, reason: 'agent gone' });
    await apply(event(BACKUP_REQUESTED, { jobId, vmId, agentId: 'ag', repositoryId: 'r1', requestedType: 'auto' }), finished);
    return finished;
  };
  const streaks = async () => Object.fromEntries(((await db.dataSource.query(`SELECT vm_id, failures_in_row FROM rm_protection_streaks ORDER BY vm_id`)) as { vm_id: string; failures_in_row: number }[]).map((r) => [r.vm_id, r.failures_in_row]));

  beforeEach(async () => {
    db = await createTestDatabase();
  });
  afterEach(async () => {
    await db.drop();
  });

  it('counts the failures since the last completed job, every failure before the first, each job once', async () => {
    for (const outcome of ['failed', 'completed', 'failed', 'failed'] as const) await job('b', outcome);
    const last = await job('a', 'failed');
    await job('a', 'failed');
    // the same failure delivered again (a replayed event) is not a second failure
    await apply(last);
    await job('c', 'completed');
    expect(await streaks()).toEqual({ a: 2, b: 2, c: 0 });
    await job('b', 'completed');
    expect((await streaks()).b).toBe(0);
  });

  it('the migration counts the jobs already recorded the same way', async () => {
    for (const outcome of ['failed', 'completed', 'failed', 'failed'] as const) await job('b', outcome);
    await job('a', 'failed');
    await job('a', 'failed');
    await job('c', 'completed');
    const projected = await streaks();
    const runner = db.dataSource.createQueryRunner();
    try {
      await runner.query(`DROP TABLE rm_protection_streaks`);
      await new ProtectionStreaks1763771800000().up(runner);
    } finally {
      await runner.release();
    }
    expect(await streaks()).toEqual(projected);
    expect(projected).toEqual({ a: 2, b: 2, c: 0 });
  });
});

describe('protection report projector: synthetic fulls for simulate (real PostgreSQL)', () => {
  let db: TestDatabase;
  const projector = new ProtectionReportProjector();

  beforeEach(async () => {
    db = await createTestDatabase();
  });
  afterEach(async () => {
    await db.drop();
  });

  /** A completed job of vm1, decided as `decided`, recorded in the event store and projected from there. */
  async function job(decided: { type: 'full' | 'incremental'; synthesizedFrom?: string | null }): Promise<string> {
    const jobId = randomUUID();
    const events = [
      { type: BACKUP_REQUESTED, data: { jobId, vmId: 'vm1', agentId: 'ag', repositoryId: 'r1', requestedType: 'auto' } },
      { type: BACKUP_STARTED, data: { jobId } },
      { type: BACKUP_TYPE_DECIDED, data: { jobId, reason: 'r', restorePointId: `rp-${jobId}`, sincePointId: null, ...decided } },
      { type: BACKUP_COMPLETED, data: { jobId, restorePointId: `rp-${jobId}`, bytesWritten: 80 } },
    ];
    await db.store.append(backupStream(jobId), events.map((e) => ({ ...e, metadata: meta })));
    const recorded = await db.store.readStream(backupStream(jobId));
    await db.dataSource.transaction(async (m) => {
      for (const e of recorded) await projector.apply(e, m);
    });
    return jobId;
  }
  const synthesized = async () => Object.fromEntries(((await db.dataSource.query(`SELECT job_id, synthesized_from FROM rm_protection_jobs`)) as { job_id: string; synthesized_from: string | null }[]).map((r) => [r.job_id, r.synthesized_from]));

  it('records the point a synthetic full copied, and after the migration a replay finds it for the jobs recorded before', async () => {
    const synthetic = await job({ type: 'full', synthesizedFrom: 'rp-7' });
    const full = await job({ type: 'full', synthesizedFrom: null });
    // written before synthetic fulls existed: no synthesizedFrom at all
    const older = await job({ type: 'incremental' });
    const projected = await synthesized();
    expect(projected).toEqual({ [synthetic]: 'rp-7', [full]: null, [older]: null });

    await db.dataSource.query(`INSERT INTO projection_checkpoints (name, position) VALUES ('protection-report', '42') ON CONFLICT (name) DO UPDATE SET position = '42'`);
    const runner = db.dataSource.createQueryRunner();
    try {
      await runner.query(`ALTER TABLE rm_protection_jobs DROP COLUMN synthesized_from`);
      await new ProtectionSyntheticFulls1763772700000().up(runner);
    } finally {
      await runner.release();
    }
    // emptied and rewound: the projection runner replays every event, from whichever event store holds them
    expect(await synthesized()).toEqual({});
    expect(await db.dataSource.query(`SELECT position FROM projection_checkpoints WHERE name = 'protection-report'`)).toEqual([{ position: null }]);
    for (const jobId of [synthetic, full, older]) {
      const recorded = await db.store.readStream(backupStream(jobId));
      await db.dataSource.transaction(async (m) => {
        for (const e of recorded) await projector.apply(e, m);
      });
    }
    expect(await synthesized()).toEqual(projected);
  });
});

describe('protection report: a corrupt point protects nothing (real PostgreSQL)', () => {
  let db: TestDatabase;
  const projector = new ProtectionReportProjector();
  const created = Date.parse('2024-05-01T00:00:00Z');
  let clock = created;
  const event = (type: string, streamId: string, data: Record<string, unknown>): RecordedEvent =>
    ({ id: randomUUID(), streamId, type, revision: 0n, position: '', data, metadata: meta, createdAt: new Date((clock += 60_000)) }) as RecordedEvent;
  const apply = (...events: RecordedEvent[]) => db.dataSource.transaction(async (m) => {
    for (const e of events) await projector.apply(e, m);
  });
  const point = (restorePointId: string, hoursAfter: number, parentId: string | null) =>
    event(RESTORE_POINT_ADDED, 'chain-vm1-r1', { restorePointId, vmId: 'vm1', repositoryId: 'r1', backupId: randomUUID(), parentId, type: parentId ? 'incremental' : 'full', createdAt: new Date(created + hoursAfter * 3_600_000).toISOString(), disks: [{ diskId: 'd', fileBytes: 1 }] });
  const newest = async () => {
    const report = await new ProtectionReportHandler(db.dataSource, null as never, projector).execute(new ProtectionReportQuery(null, new Date(created + 10 * 3_600_000)));
    return report.vms.find((v) => v.vmId === 'vm1')?.lastRestorePoint?.restorePointId ?? null;
  };

  beforeEach(async () => {
    db = await createTestDatabase();
    await apply(event(VM_INVENTORY_REPORTED, 'agent-ag', { agentId: 'ag', vms: [{ vmId: 'vm1', name: 'vm1', disks: [] }] }), point('rp-1', 1, null), point('rp-2', 2, 'rp-1'), point('rp-3', 3, 'rp-2'));
  });
  afterEach(async () => {
    await db.drop();
  });

  it("takes the newest intact point: damage found in a point and those reading through it, a failed verify, a delete stopped midway", async () => {
    expect(await newest()).toBe('rp-3');
    await apply(event(RESTORE_POINT_CORRUPTED, 'chain-vm1-r1', { restorePointId: 'rp-2', diskId: 'd', offset: 0, length: 65536, expected: 'a', actual: 'b', readsThrough: ['rp-3'] }));
    expect(await newest()).toBe('rp-1');
    await apply(event(RESTORE_POINT_VERIFIED, 'chain-vm1-r1', { restorePointId: 'rp-1', ok: false, problems: ['x'], warnings: [] }));
    expect(await newest()).toBeNull();
  });

  it('a delete undone or a verify that passed changes nothing; a delete stopped past its point of no return does', async () => {
    await apply(event(RESTORE_POINT_DELETE_FAILED, 'chain-vm1-r1', { restorePointId: 'rp-3', reason: 'x', undone: true }), event(RESTORE_POINT_VERIFIED, 'chain-vm1-r1', { restorePointId: 'rp-3', ok: true, problems: [], warnings: [] }));
    expect(await newest()).toBe('rp-3');
    await apply(event(RESTORE_POINT_DELETE_FAILED, 'chain-vm1-r1', { restorePointId: 'rp-3', reason: 'x', undone: false }));
    expect(await newest()).toBe('rp-2');
  });

  it('the migration marks the points the restore points read model already holds corrupt', async () => {
    await db.dataSource.query(`INSERT INTO rm_restore_points (restore_point_id, vm_id, repository_id, backup_id, type, created_at, disks, integrity, status, chain_position) VALUES ('rp-3', 'vm1', $2, $1, 'incremental', now(), '[]', 'corrupt', 'available', '3')`, [randomUUID(), randomUUID()]);
    const runner = db.dataSource.createQueryRunner();
    try {
      await new ProtectionCorrupt1763773200000().down(runner);
      await new ProtectionCorrupt1763773200000().up(runner);
    } finally {
      await runner.release();
    }
    expect(await newest()).toBe('rp-2');
  });
});
