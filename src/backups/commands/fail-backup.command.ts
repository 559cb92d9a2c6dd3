import { Command } from '../../eventing/command';
import { BackupPhase } from '../backup.events';
import { BackupJobResult } from './backup-job-result';

/** The job ended without a restore point; `phase` is where it was when it went wrong (default: where it is). */
export class FailBackupCommand extends Command<BackupJobResult> {
  constructor(
    readonly jobId: string,
    readonly reason: string,
    readonly phase?: BackupPhase,
  ) {
    super();
  }
}
