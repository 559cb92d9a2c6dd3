import { randomUUID } from 'node:crypto';
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
    /** Chosen by the caller when the id is recorded first elsewhere (a policy's slot names its job before requesting it). */
    readonly jobId: string = randomUUID(),
  ) {
    super();
  }
}
