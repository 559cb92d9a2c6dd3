import { Inject } from '@nestjs/common';
import { IQueryHandler, QueryHandler } from '@nestjs/cqrs';
import { DataSource, EntityManager } from 'typeorm';
import { EVENT_STORE, EventStore } from '../../src/event-store/event-store.port';
import type { DiskLeftOut } from '../../src/wire/backup-protocol';
import { buildProtectionReport, DrillFacts, FailureStreak, NewestPoint, ProtectionFacts } from '../../src/policies/reports/protection-report';
import { ProtectionReport, ProtectionReportQuery } from '../../src/policies/reports/queries/protection-report.query';
import { readerOf, readProtectionData } from './protection-data.queries';
import { PROTECTION_TABLES, ProtectionReportProjector } from './protection-report.projector';

type Db = Pick<EntityManager, 'query'>;
const REPLAY_BATCH = 1000;

async function readFacts(db: Db): Promise<ProtectionFacts> {
  const read = readerOf(db);
  const [{ policies, vms }, newest, recycled, streaks, drills, leftOut] = await Promise.all([
    readProtectionData(db, read),
    // a point in the recycle bin is deleted as far as the RPO goes (it is counted apart), and a corrupt one protects nothing
    read((): Promise<{ vm_id: string; restore_point_id: string; repository_id: string; created_at: Date }[]> =>
      db.query(`SELECT DISTINCT ON (vm_id) vm_id, restore_point_id, repository_id, created_at FROM rm_protection_points WHERE NOT recycled AND NOT corrupt ORDER BY vm_id, created_at DESC, restore_point_id DESC`),
    ),
    read((): Promise<{ vm_id: string; points: number }[]> => db.query(`SELECT vm_id, count(*)::int AS points FROM rm_protection_points WHERE recycled GROUP BY vm_id ORDER BY vm_id`)),
    read((): Promise<{ vm_id: string; failures_in_row: number }[]> => db.query(`SELECT vm_id, failures_in_row FROM rm_protection_streaks ORDER BY vm_id`)),
    read((): Promise<{ vm_id: string; last_at: Date; last_passed: boolean; last_reason: string | null; last_restore_point_id: string; passed_at: Date | null; passed_boot_ms: number | null; passed_restore_point_id: string | null }[]> =>
      db.query(`SELECT vm_id, last_at, last_passed, last_reason, last_restore_point_id, passed_at, passed_boot_ms, passed_restore_point_id FROM rm_protection_drills ORDER BY vm_id`),
    ),
    read((): Promise<{ vm_id: string; disks_left_out: DiskLeftOut[] }[]> => db.query(`SELECT vm_id, disks_left_out FROM rm_protection_vms WHERE disks_left_out <> '[]'::jsonb ORDER BY vm_id`)),
  ]);
  return {
    policies,
    vms,
    drills: drills.map(
      (d): DrillFacts => ({
        vmId: d.vm_id,
        last: { at: d.last_at, passed: d.last_passed, reason: d.last_reason, restorePointId: d.last_restore_point_id },
        passed: d.passed_at ? { at: d.passed_at, bootMs: d.passed_boot_ms!, restorePointId: d.passed_restore_point_id! } : null,
      }),
    ),
    newest: newest.map((p): NewestPoint => ({ vmId: p.vm_id, restorePointId: p.restore_point_id, repositoryId: p.repository_id, createdAt: p.created_at })),
    streaks: streaks.map((s): FailureStreak => ({ vmId: s.vm_id, failuresInRow: s.failures_in_row })),
    recycled: recycled.map((r) => ({ vmId: r.vm_id, points: r.points })),
    leftOut: leftOut.map((l) => ({ vmId: l.vm_id, disks: l.disks_left_out })),
  };
}

/**
 * Now: the live read model. At a past moment: the same projector replays every event recorded up to
 * then into temporary tables that shadow the live ones (same names, this transaction only), the same
 * SQL reads them, and the transaction is rolled back, so the answer is the report as it read then.
 */
@QueryHandler(ProtectionReportQuery)
export class ProtectionReportHandler implements IQueryHandler<ProtectionReportQuery, ProtectionReport> {
  constructor(
    private readonly dataSource: DataSource,
    @Inject(EVENT_STORE) private readonly store: EventStore,
    private readonly projector: ProtectionReportProjector,
  ) {}

  async execute({ at, now }: ProtectionReportQuery): Promise<ProtectionReport> {
    if (!at) return { at: now.toISOString(), replayed: false, vms: buildProtectionReport(await readFacts(this.dataSource), now) };
    const runner = this.dataSource.createQueryRunner();
    await runner.connect();
    await runner.startTransaction();
    try {
      const manager = runner.manager;
      for (const table of PROTECTION_TABLES) await manager.query(`CREATE TEMP TABLE ${table} (LIKE public.${table} INCLUDING ALL) ON COMMIT DROP`);
      for (let after: string | null = null; ; ) {
        const events = await this.store.readAll({ after, filter: this.projector.filter, maxCount: REPLAY_BATCH });
        for (const e of events) if (e.createdAt <= at) await this.projector.apply(e, manager);
        if (events.length < REPLAY_BATCH) break;
        after = events[events.length - 1].position;
      }
      return { at: at.toISOString(), replayed: true, vms: buildProtectionReport(await readFacts(manager), at) };
    } finally {
      await runner.rollbackTransaction();
      await runner.release();
    }
  }
}
