import { Command } from '../../eventing/command';
import { BackupJobResult } from './backup-job-result';

/** A queued job leaves the queue, taken by the hub that will run it (no events: another hub took it first). */
export class StartBackupCommand extends Command<BackupJobResult> {
  constructor(
    readonly jobId: string,
    readonly hubInstance: string,
  ) {
    super();
  }
}
