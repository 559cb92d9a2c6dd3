import { ChainState, pointOf } from '../restore-points/chain.aggregate';
import type { BackupJobState } from './backup-job.aggregate';

/**
 * Whether a job's restore point is in its chain: every disk transferred and the point recorded. Such a job is the
 * backup it set out to be whatever failed after that (the completion's append, the hub stopping): it is completed,
 * and its files are never cleaned away as a failed job's are.
 */
export function pointRecorded(job: Pick<BackupJobState, 'restorePointId' | 'disks'>, chain: ChainState): boolean {
  return job.restorePointId !== null && pointOf(chain, job.restorePointId) !== undefined && Object.values(job.disks).every((d) => d.done);
}
