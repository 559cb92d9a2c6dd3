import { Command } from '../../eventing/command';
import { BackupJobResult } from './backup-job-result';

/** Every disk arrived, the exports are stopped and the restore point is in its chain. */
export class CompleteBackupCommand extends Command<BackupJobResult> {
  constructor(readonly jobId: string) {
    super();
  }
}
