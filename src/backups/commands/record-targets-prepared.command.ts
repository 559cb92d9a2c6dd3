import { Command } from '../../eventing/command';
import { Target } from '../backup.events';
import { BackupJobResult } from './backup-job-result';

/** Every disk has a target image served by its own export. */
export class RecordTargetsPreparedCommand extends Command<BackupJobResult> {
  constructor(
    readonly jobId: string,
    readonly targets: Target[],
  ) {
    super();
  }
}
