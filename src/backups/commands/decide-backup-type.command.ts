import { Command } from '../../eventing/command';
import { PlanAnswer } from '../../wire/backup-protocol';
import { LastPoint } from '../backup-job.aggregate';
import { BackupJobResult } from './backup-job-result';

/** Full, incremental or synthetic full, decided by the job from the chain's newest point and the agent's plan. */
export class DecideBackupTypeCommand extends Command<BackupJobResult> {
  constructor(
    readonly jobId: string,
    readonly restorePointId: string,
    readonly last: LastPoint | null,
    readonly plan: PlanAnswer,
    /** The repository's limit on the points of one chain. */
    readonly maxChainDepth: number,
  ) {
    super();
  }
}
