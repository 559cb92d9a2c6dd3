import { Injectable } from '@nestjs/common';
import { EntityManager } from 'typeorm';
import {
  BACKUP_CANCEL_REQUESTED,
  BACKUP_COMPLETED,
  BACKUP_FAILED,
  BACKUP_REQUESTED,
  BACKUP_STARTED,
  BACKUP_STREAM_PREFIX,
  BACKUP_TARGETS_PREPARED,
  BACKUP_TARGETS_RELEASED,
  BACKUP_TYPE_DECIDED,
  BackupCompleted,
  BackupFailed,
  BackupRequested,
  BackupTargetsPrepared,
  BackupTypeDecided,
  DISK_TRANSFER_COMPLETED,
  DISK_TRANSFER_PROGRESSED,
  DISK_TRANSFER_STARTED,
  DiskTransferCompleted,
  DiskTransferProgressed,
  DiskTransferStarted,
  SNAPSHOT_CREATED,
  SNAPSHOT_REQUESTED,
} from '../../src/backups/backup.events';
import { RecordedEvent } from '../../src/event-store/event-store.port';
import { Projector } from '../../src/projection-runner/projector';
import { BackupJobView, BackupOutcomeView, DiskProgressView } from './backup-job.entity';

@Injectable()
export class BackupJobsProjector implements Projector {
  readonly name = 'backup-jobs';
  readonly filter = { streamPrefixes: [BACKUP_STREAM_PREFIX] };
  readonly tables = ['rm_backup_outcomes', 'rm_backup_jobs'];

  async apply(event: RecordedEvent, manager: EntityManager): Promise<void> {
    const jobs = manager.getRepository(BackupJobView);
    const jobId = (event.data as { jobId: string }).jobId;
    const updateDisk = async (diskId: string, change: Partial<DiskProgressView>) => {
      const job = await jobs.findOneByOrFail({ jobId });
      await jobs.update({ jobId }, { disks: job.disks.map((d) => (d.diskId === diskId ? { ...d, ...change } : d)) });
    };
    switch (event.type) {
      case BACKUP_REQUESTED: {
        const d = event.data as BackupRequested['data'];
        await jobs.insert({
          jobId,
          vmId: d.vmId,
          agentId: d.agentId,
          repositoryId: d.repositoryId,
          requestedType: d.requestedType,
          type: null,
          typeReason: null,
          phase: 'queued',
          restorePointId: null,
          disks: [],
          disksLeftOut: [],
          bytesWritten: '0',
          error: null,
          failedPhase: null,
          cancelRequested: false,
          requestedAt: event.createdAt,
          startedAt: null,
          finishedAt: null,
        });
        return;
      }
      case BACKUP_STARTED:
        await jobs.update({ jobId }, { phase: 'preparing', startedAt: event.createdAt });
        return;
      case BACKUP_TYPE_DECIDED: {
        const d = event.data as BackupTypeDecided['data'];
        await jobs.update({ jobId }, { type: d.type, typeReason: d.reason, restorePointId: d.restorePointId, disksLeftOut: d.disksLeftOut ?? [] });
        return;
      }
      case BACKUP_TARGETS_PREPARED: {
        const d = event.data as unknown as BackupTargetsPrepared['data'];
        await jobs.update({ jobId }, { disks: d.targets.map((t) => ({ diskId: t.diskId, bytesDone: 0, bytesPlanned: 0, rate: 0, bytesWritten: 0, done: false })) });
        return;
      }
      case SNAPSHOT_REQUESTED:
        await jobs.update({ jobId }, { phase: 'snapshot' });
        return;
      case SNAPSHOT_CREATED:
        await jobs.update({ jobId }, { phase: 'transferring' });
        return;
      case DISK_TRANSFER_STARTED: {
        const d = event.data as DiskTransferStarted['data'];
        await updateDisk(d.diskId, { bytesPlanned: d.bytesPlanned });
        return;
      }
      case DISK_TRANSFER_PROGRESSED: {
        const d = event.data as DiskTransferProgressed['data'];
        await updateDisk(d.diskId, { bytesDone: d.bytesDone, bytesPlanned: d.bytesPlanned, rate: d.rate });
        return;
      }
      case DISK_TRANSFER_COMPLETED: {
        const d = event.data as DiskTransferCompleted['data'];
        await updateDisk(d.diskId, { bytesDone: d.bytesPlanned, bytesPlanned: d.bytesPlanned, bytesWritten: d.bytesWritten, rate: d.durationMs ? Math.round((d.bytesPlanned * 1000) / d.durationMs) : 0, done: true });
        return;
      }
      case BACKUP_TARGETS_RELEASED: {
        const job = await jobs.findOneByOrFail({ jobId });
        if (job.phase === 'transferring' || job.phase === 'snapshot') await jobs.update({ jobId }, { phase: 'finalizing' });
        return;
      }
      case BACKUP_CANCEL_REQUESTED:
        await jobs.update({ jobId }, { cancelRequested: true });
        return;
      case BACKUP_COMPLETED:
      case BACKUP_FAILED: {
        const job = await jobs.findOneByOrFail({ jobId });
        const failed = event.type === BACKUP_FAILED ? (event.data as BackupFailed['data']) : null;
        const bytes = failed ? job.disks.reduce((n, d) => n + d.bytesWritten, 0) : (event.data as BackupCompleted['data']).bytesWritten;
        await jobs.update({ jobId }, { phase: failed ? 'failed' : 'completed', error: failed?.reason ?? null, failedPhase: failed?.phase ?? null, bytesWritten: String(bytes), finishedAt: event.createdAt });
        await manager.getRepository(BackupOutcomeView).insert({
          jobId,
          vmId: job.vmId,
          outcome: failed ? 'failed' : 'completed',
          bytes: String(bytes),
          durationMs: String(event.createdAt.getTime() - (job.startedAt ?? job.requestedAt).getTime()),
          finishedAt: event.createdAt,
        });
        return;
      }
    }
  }
}
