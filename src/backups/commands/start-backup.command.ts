import { Command } from '../../eventing/command';
import { BackupJobResult } from './backup-job-result';

/** A queued job leaves the queue. */
export class StartBackupCommand extends Command<BackupJobResult> {
  constructor(readonly jobId: string) {
    super();
  }
}
