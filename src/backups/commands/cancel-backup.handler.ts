import { CommandHandler, EventBus, ICommandHandler } from '@nestjs/cqrs';
import { AggregateRepository } from '../../eventing/aggregate-repository';
import { backupJobAggregate } from '../backup-job.aggregate';
import { backupStream } from '../backup.events';
import { JobCancelNotice } from '../backup.notices';
import { BackupJobResult, jobResult } from './backup-job-result';
import { CancelBackupCommand } from './cancel-backup.command';

/** Records the cancel, on any hub; the workflow of the hub running the job reads it and stops the agent and cleans up. */
@CommandHandler(CancelBackupCommand)
export class CancelBackupHandler implements ICommandHandler<CancelBackupCommand, BackupJobResult> {
  constructor(
    private readonly aggregates: AggregateRepository,
    private readonly notices: EventBus,
  ) {}

  async execute(command: CancelBackupCommand): Promise<BackupJobResult> {
    const { jobId } = command;
    const result = await this.aggregates.execute(backupStream(jobId), backupJobAggregate, { kind: 'cancel', jobId }, command);
    this.notices.publish(new JobCancelNotice(jobId, result.eventIds[0] ?? null));
    return jobResult(result);
  }
}
