import { Command } from '../../eventing/command';
import { BackupJobResult } from './backup-job-result';

/** The job's exports are stopped; after a failure, also which of its files were removed. */
export class RecordTargetsReleasedCommand extends Command<BackupJobResult> {
  constructor(
    readonly jobId: string,
    readonly filesRemoved: string[],
  ) {
    super();
  }
}
