import { Appended, Command } from '../../eventing/command';
import { RequestedType } from '../backup.events';

export interface BackupRequestedResult extends Appended {
  jobId: string;
  eventIds: string[];
}

export class RequestBackupCommand extends Command<BackupRequestedResult> {
  constructor(
    readonly vmId: string,
    readonly repositoryId: string,
    readonly requestedType: RequestedType,
  ) {
    super();
  }
}
