import { CommandHandler, ICommandHandler } from '@nestjs/cqrs';
import { AggregateRepository } from '../../eventing/aggregate-repository';
import { backupJobAggregate } from '../backup-job.aggregate';
import { backupStream } from '../backup.events';
import { BackupJobResult, jobResult } from './backup-job-result';
import { CompleteBackupCommand } from './complete-backup.command';

@CommandHandler(CompleteBackupCommand)
export class CompleteBackupHandler implements ICommandHandler<CompleteBackupCommand, BackupJobResult> {
  constructor(private readonly aggregates: AggregateRepository) {}

  async execute(command: CompleteBackupCommand): Promise<BackupJobResult> {
    return jobResult(await this.aggregates.execute(backupStream(command.jobId), backupJobAggregate, { kind: 'complete' }, command));
  }
}
