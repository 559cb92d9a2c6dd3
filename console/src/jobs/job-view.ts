import type { components } from '../api/schema';
import type { LiveEvent } from '../live';

/** A job's disk and a job as the hub's OpenAPI document describes them (GET /api/v1/backups). */
export type DiskView = components['schemas']['BackupJobDiskResponse'];
export type JobView = Omit<components['schemas']['BackupJobResponse'], 'asOf'>;

/** A job the page learns of from its BackupRequested event, as the read model records it. */
export function requestedJob(e: LiveEvent): JobView {
  const d = e.data as Pick<JobView, 'jobId' | 'vmId' | 'agentId' | 'repositoryId' | 'requestedType'>;
  return {
    jobId: d.jobId,
    vmId: d.vmId,
    agentId: d.agentId,
    repositoryId: d.repositoryId,
    requestedType: d.requestedType,
    status: 'queued',
    phase: 'queued',
    type: null,
    typeReason: null,
    restorePointId: null,
    disks: [],
    disksLeftOut: [],
    bytesWritten: 0,
    error: null,
    failedPhase: null,
    cancelRequested: false,
    requestedAt: e.time,
    startedAt: null,
    finishedAt: null,
  };
}

/** A listing answered as of `asOf`, with every event since that this tab has seen applied in order. */
export function upToDate(jobs: JobView[], asOf: string | null, events: LiveEvent[]): JobView[] {
  return events.filter((e) => asOf === null || e.position > asOf).reduce(applyToList, jobs);
}

export function applyToList(jobs: JobView[], e: LiveEvent): JobView[] {
  const jobId = jobIdOf(e);
  if (!jobId) return jobs;
  if (e.type === 'BackupRequested') return jobs.some((j) => j.jobId === jobId) ? jobs : [requestedJob(e), ...jobs];
  return jobs.map((j) => (j.jobId === jobId ? applyJobEvent(j, e) : j));
}

export const jobIdOf = (e: LiveEvent) => (e.streamId.startsWith('backup-job-') ? e.streamId.slice('backup-job-'.length) : null);

/**
 * A job as the events after its listing make it, the way the hub's jobs read model folds them
 * (projections/backup-jobs), so the page moves without asking the hub again.
 */
export function applyJobEvent(job: JobView, e: LiveEvent): JobView {
  const d = e.data as Record<string, never>;
  const disk = (change: Partial<DiskView>) => {
    const known = job.disks.some((x) => x.diskId === d.diskId);
    const disks = known ? job.disks.map((x) => (x.diskId === d.diskId ? { ...x, ...change } : x)) : [...job.disks, { diskId: d.diskId, bytesDone: 0, bytesPlanned: 0, rate: 0, bytesWritten: 0, done: false, ...change }];
    return { ...job, disks };
  };
  switch (e.type) {
    case 'BackupStarted':
      return { ...job, status: 'running', phase: 'preparing' };
    case 'BackupTypeDecided':
      return { ...job, type: d.type, restorePointId: d.restorePointId, disksLeftOut: d.disksLeftOut ?? job.disksLeftOut };
    case 'SnapshotRequested':
      return { ...job, phase: 'snapshot' };
    case 'SnapshotCreated':
      return { ...job, phase: 'transferring' };
    case 'DiskTransferStarted':
      return disk({ bytesPlanned: d.bytesPlanned });
    case 'DiskTransferProgressed':
      return disk({ bytesDone: d.bytesDone, bytesPlanned: d.bytesPlanned, rate: d.rate });
    case 'DiskTransferCompleted':
      return disk({ bytesDone: d.bytesPlanned, bytesPlanned: d.bytesPlanned, bytesWritten: d.bytesWritten, done: true });
    case 'BackupTargetsReleased':
      return job.phase === 'transferring' || job.phase === 'snapshot' ? { ...job, phase: 'finalizing' } : job;
    case 'BackupCancelRequested':
      return { ...job, cancelRequested: true };
    case 'BackupCompleted':
      return { ...job, status: 'completed', phase: 'completed', restorePointId: d.restorePointId, finishedAt: e.time };
    case 'BackupFailed':
      return { ...job, status: 'failed', phase: 'failed', error: d.reason, failedPhase: d.phase, finishedAt: e.time };
    default:
      return job;
  }
}
