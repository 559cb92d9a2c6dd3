import { Appended } from '../../eventing/command';
import { ExecuteResult } from '../../eventing/aggregate-repository';
import { BackupJobState } from '../backup-job.aggregate';
import { BackupEvent } from '../backup.events';

/** What every backup-job handler answers: where to wait for read models, what it appended (to cause the next step), and the job now. */
export interface BackupJobResult extends Appended {
  eventIds: string[];
  state: BackupJobState;
}

export function jobResult({ position, eventIds, state }: ExecuteResult<BackupJobState, BackupEvent>): BackupJobResult {
  return { position, eventIds, state };
}
