import { Command } from '../../eventing/command';
import { BackupJobResult } from './backup-job-result';

/** The targets are ready: the agent is asked for one snapshot of every disk. */
export class RequestSnapshotCommand extends Command<BackupJobResult> {
  constructor(readonly jobId: string) {
    super();
  }
}
