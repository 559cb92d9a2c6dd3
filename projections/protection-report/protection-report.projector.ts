import { Injectable } from '@nestjs/common';
import { EntityManager } from 'typeorm';
import { AGENT_STREAM_PREFIX, VM_INVENTORY_REPORTED, VmInventoryReported } from '../../src/agents/agent.events';
import { BACKUP_COMPLETED, BACKUP_FAILED, BACKUP_REQUESTED, BACKUP_STARTED, BACKUP_STREAM_PREFIX, BACKUP_TYPE_DECIDED, BackupCompleted, BackupFailed, BackupRequested, BackupTypeDecided } from '../../src/backups/backup.events';
import { RecordedEvent } from '../../src/event-store/event-store.port';
import { POLICY_SLOTS_STREAM_PREFIX, SLOT_FIRED, SlotFired } from '../../src/policies/policy-slots.events';
import { POLICY_CREATED, POLICY_DELETED, POLICY_STREAM_PREFIX, POLICY_UPDATED, PolicyCreated, PolicyDeleted, PolicyUpdated } from '../../src/policies/policy.events';
import { RETENTION_DECIDED, RETENTION_STREAM_PREFIX, RetentionDecided } from '../../src/policies/retention/retention.events';
import { Projector } from '../../src/projection-runner/projector';
import { RECOVERY_DRILL_FAILED, RECOVERY_DRILL_PASSED, RecoveryDrillFailed, RecoveryDrillPassed, RESTORE_STREAM_PREFIX } from '../../src/vm-restore/restore.events';
import {
  CHAIN_STREAM_PREFIX,
  PointDisk,
  RESTORE_POINT_ADDED,
  RESTORE_POINT_CORRUPTED,
  RESTORE_POINT_DELETE_FAILED,
  RESTORE_POINT_SYNCED,
  RESTORE_POINT_DELETED,
  RESTORE_POINT_VERIFIED,
  RESTORE_POINT_MERGED,
  RESTORE_POINT_RECYCLED,
  RESTORE_POINT_UNDELETED,
  RestorePoint,
  RestorePointCorrupted,
  RestorePointDeleted,
  RestorePointDeleteFailed,
  RestorePointMerged,
  RestorePointVerified,
} from '../../src/restore-points/chain.events';

export const PROTECTION_TABLES = ['rm_protection_points', 'rm_protection_jobs', 'rm_protection_vms', 'rm_protection_policies', 'rm_protection_drills', 'rm_protection_streaks'];

const bytesOf = (disks: PointDisk[]) => disks.reduce((n, d) => n + d.fileBytes, 0);

/**
 * Events → what protection reports, retention and simulate read. Every write is plain SQL on the
 * unqualified table names, so `?at=` can replay the very same `apply` into temporary tables of
 * the same names (a session's temporary tables are found before the permanent ones).
 */
@Injectable()
export class ProtectionReportProjector implements Projector {
  readonly name = 'protection-report';
  readonly filter = { streamPrefixes: [POLICY_STREAM_PREFIX, POLICY_SLOTS_STREAM_PREFIX, BACKUP_STREAM_PREFIX, CHAIN_STREAM_PREFIX, AGENT_STREAM_PREFIX, RETENTION_STREAM_PREFIX, RESTORE_STREAM_PREFIX] };
  readonly tables = PROTECTION_TABLES;

  async apply(event: RecordedEvent, manager: EntityManager): Promise<void> {
    const q = (sql: string, params: unknown[]) => manager.query(sql, params);
    const corrupt = (ids: string[]) => q(`UPDATE rm_protection_points SET corrupt = true WHERE restore_point_id = ANY($1)`, [ids]);
    switch (event.type) {
      case POLICY_CREATED:
      case POLICY_UPDATED: {
        const { policyId, name } = event.data as unknown as PolicyCreated['data'] | PolicyUpdated['data'];
        const { policyId: _id, createdAt: _c, updatedAt: _u, ...definition } = event.data as Record<string, unknown>;
        await q(
          `INSERT INTO rm_protection_policies (policy_id, name, definition, created_at) VALUES ($1, $2, $3, $4)
           ON CONFLICT (policy_id) DO UPDATE SET name = EXCLUDED.name, definition = EXCLUDED.definition`,
          [policyId, name, JSON.stringify(definition), event.createdAt],
        );
        return;
      }
      case POLICY_DELETED: {
        const d = event.data as PolicyDeleted['data'];
        await q(`UPDATE rm_protection_policies SET deleted_at = $2 WHERE policy_id = $1`, [d.policyId, event.createdAt]);
        return;
      }
      case VM_INVENTORY_REPORTED: {
        const d = event.data as VmInventoryReported['data'];
        for (const vm of d.vms) {
          await q(
            `INSERT INTO rm_protection_vms (vm_id, name, agent_id, disks_left_out) VALUES ($1, $2, $3, $4) ON CONFLICT (vm_id) DO UPDATE SET name = EXCLUDED.name, agent_id = EXCLUDED.agent_id, disks_left_out = EXCLUDED.disks_left_out`,
            [vm.vmId, vm.name, d.agentId, JSON.stringify(vm.disksLeftOut ?? [])],
          );
        }
        return;
      }
      case SLOT_FIRED: {
        const d = event.data as SlotFired['data'];
        await q(
          `INSERT INTO rm_protection_jobs (job_id, vm_id, policy_id, slot) VALUES ($1, $2, $3, $4)
           ON CONFLICT (job_id) DO UPDATE SET policy_id = EXCLUDED.policy_id, slot = EXCLUDED.slot`,
          [d.jobId, d.vmId, d.policyId, d.slot],
        );
        return;
      }
      case BACKUP_REQUESTED: {
        const d = event.data as BackupRequested['data'];
        await q(
          `INSERT INTO rm_protection_jobs (job_id, vm_id, repository_id, requested_at) VALUES ($1, $2, $3, $4)
           ON CONFLICT (job_id) DO UPDATE SET vm_id = EXCLUDED.vm_id, repository_id = EXCLUDED.repository_id, requested_at = EXCLUDED.requested_at`,
          [d.jobId, d.vmId, d.repositoryId, event.createdAt],
        );
        return;
      }
      case BACKUP_STARTED:
        await q(`UPDATE rm_protection_jobs SET started_at = $2 WHERE job_id = $1`, [(event.data as { jobId: string }).jobId, event.createdAt]);
        return;
      case BACKUP_TYPE_DECIDED: {
        const d = event.data as BackupTypeDecided['data'];
        await q(`UPDATE rm_protection_jobs SET type = $2, synthesized_from = $3 WHERE job_id = $1`, [d.jobId, d.type, d.synthesizedFrom ?? null]);
        return;
      }
      case BACKUP_COMPLETED: {
        const d = event.data as BackupCompleted['data'];
        await q(
          `WITH job AS (UPDATE rm_protection_jobs SET outcome = 'completed', finished_at = $2, restore_point_id = $3, bytes_written = $4 WHERE job_id = $1 RETURNING vm_id)
           INSERT INTO rm_protection_streaks (vm_id, failures_in_row) SELECT vm_id, 0 FROM job WHERE vm_id IS NOT NULL
           ON CONFLICT (vm_id) DO UPDATE SET failures_in_row = 0`,
          [d.jobId, event.createdAt, d.restorePointId, d.bytesWritten],
        );
        return;
      }
      case BACKUP_FAILED: {
        const d = event.data as BackupFailed['data'];
        // a failure counts once per job (the statement's snapshot still shows the job's outcome before it)
        await q(
          `WITH before AS (SELECT outcome FROM rm_protection_jobs WHERE job_id = $1),
                job AS (UPDATE rm_protection_jobs SET outcome = 'failed', finished_at = $2, reason = $3 WHERE job_id = $1 RETURNING vm_id)
           INSERT INTO rm_protection_streaks (vm_id, failures_in_row) SELECT vm_id, 1 FROM job WHERE vm_id IS NOT NULL AND (SELECT outcome FROM before) IS DISTINCT FROM 'failed'
           ON CONFLICT (vm_id) DO UPDATE SET failures_in_row = rm_protection_streaks.failures_in_row + 1`,
          [d.jobId, event.createdAt, d.reason],
        );
        return;
      }
      case RESTORE_POINT_ADDED:
      case RESTORE_POINT_SYNCED: {
        const p = event.data as unknown as RestorePoint;
        await q(
          `INSERT INTO rm_protection_points (restore_point_id, vm_id, repository_id, backup_id, parent_id, type, created_at, bytes) VALUES ($1, $2, $3, $4, $5, $6, $7, $8)
           ON CONFLICT (restore_point_id) DO NOTHING`,
          [p.restorePointId, p.vmId, p.repositoryId, p.backupId, p.parentId, p.type, p.createdAt, bytesOf(p.disks)],
        );
        return;
      }
      case RESTORE_POINT_MERGED: {
        const d = event.data as unknown as RestorePointMerged['data'];
        await q(`DELETE FROM rm_protection_points WHERE restore_point_id = $1`, [d.restorePointId]);
        await q(`UPDATE rm_protection_points SET type = 'full', parent_id = NULL, bytes = $2 WHERE restore_point_id = $1`, [d.intoId, bytesOf(d.disks)]);
        return;
      }
      // corrupt for good, as the chain decides it (chain.aggregate.ts): such a point protects nothing
      case RESTORE_POINT_CORRUPTED: {
        const d = event.data as unknown as RestorePointCorrupted['data'];
        await corrupt([d.restorePointId, ...d.readsThrough]);
        return;
      }
      case RESTORE_POINT_VERIFIED: {
        const d = event.data as unknown as RestorePointVerified['data'];
        if (!d.ok) await corrupt([d.restorePointId]);
        return;
      }
      case RESTORE_POINT_DELETE_FAILED: {
        const d = event.data as unknown as RestorePointDeleteFailed['data'];
        if (!d.undone) await corrupt([d.restorePointId]);
        return;
      }
      case RESTORE_POINT_RECYCLED:
      case RESTORE_POINT_UNDELETED:
        await q(`UPDATE rm_protection_points SET recycled = $2 WHERE restore_point_id = $1`, [(event.data as { restorePointId: string }).restorePointId, event.type === RESTORE_POINT_RECYCLED]);
        return;
      case RESTORE_POINT_DELETED: {
        const d = event.data as unknown as RestorePointDeleted['data'];
        const removed: { parent_id: string | null }[] = await q(`SELECT parent_id FROM rm_protection_points WHERE restore_point_id = $1`, [d.restorePointId]);
        await q(`DELETE FROM rm_protection_points WHERE restore_point_id = $1`, [d.restorePointId]);
        if (removed.length) {
          const bytes = d.childDisks ? bytesOf(d.childDisks) : null;
          await q(`UPDATE rm_protection_points SET parent_id = $2, bytes = COALESCE($3, bytes) WHERE parent_id = $1`, [d.restorePointId, removed[0].parent_id, bytes]);
        }
        return;
      }
      case RECOVERY_DRILL_PASSED: {
        const d = event.data as RecoveryDrillPassed['data'];
        await q(
          `INSERT INTO rm_protection_drills (vm_id, last_at, last_passed, last_reason, last_restore_point_id, passed_at, passed_boot_ms, passed_restore_point_id) VALUES ($1, $2, true, NULL, $3, $2, $4, $3)
           ON CONFLICT (vm_id) DO UPDATE SET last_at = EXCLUDED.last_at, last_passed = true, last_reason = NULL, last_restore_point_id = EXCLUDED.last_restore_point_id,
             passed_at = EXCLUDED.passed_at, passed_boot_ms = EXCLUDED.passed_boot_ms, passed_restore_point_id = EXCLUDED.passed_restore_point_id`,
          [d.vmId, event.createdAt, d.restorePointId, d.bootMs],
        );
        return;
      }
      case RECOVERY_DRILL_FAILED: {
        const d = event.data as RecoveryDrillFailed['data'];
        await q(
          `INSERT INTO rm_protection_drills (vm_id, last_at, last_passed, last_reason, last_restore_point_id) VALUES ($1, $2, false, $3, $4)
           ON CONFLICT (vm_id) DO UPDATE SET last_at = EXCLUDED.last_at, last_passed = false, last_reason = EXCLUDED.last_reason, last_restore_point_id = EXCLUDED.last_restore_point_id`,
          [d.vmId, event.createdAt, d.reason, d.restorePointId],
        );
        return;
      }
      case RETENTION_DECIDED: {
        const d = event.data as RetentionDecided['data'];
        if (d.trigger.kind === 'backup') await q(`UPDATE rm_protection_jobs SET retention_decided = true WHERE job_id = $1`, [d.trigger.backupId]);
        return;
      }
    }
  }
}
