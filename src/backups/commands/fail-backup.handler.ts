import { CommandHandler, ICommandHandler } from '@nestjs/cqrs';
import { AggregateRepository } from '../../eventing/aggregate-repository';
import { backupJobAggregate } from '../backup-job.aggregate';
import { backupStream } from '../backup.events';
import { BackupJobResult, jobResult } from './backup-job-result';
import { FailBackupCommand } from './fail-backup.command';

@CommandHandler(FailBackupCommand)
export class FailBackupHandler implements ICommandHandler<FailBackupCommand, BackupJobResult> {
  constructor(private readonly aggregates: AggregateRepository) {}

  async execute(command: FailBackupCommand): Promise<BackupJobResult> {
    return jobResult(await this.aggregates.execute(backupStream(command.jobId), backupJobAggregate, { kind: 'fail', reason: command.reason, phase: command.phase }, command));
  }
}
