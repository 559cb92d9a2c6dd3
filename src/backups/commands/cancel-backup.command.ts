import { Command } from '../../eventing/command';
import { BackupJobResult } from './backup-job-result';

export class CancelBackupCommand extends Command<BackupJobResult> {
  constructor(readonly jobId: string) {
    super();
  }
}
