import { CommandHandler, ICommandHandler } from '@nestjs/cqrs';
import { AggregateRepository } from '../../eventing/aggregate-repository';
import { backupJobAggregate } from '../backup-job.aggregate';
import { backupStream } from '../backup.events';
import { BackupJobResult, jobResult } from './backup-job-result';
import { DecideBackupTypeCommand } from './decide-backup-type.command';

@CommandHandler(DecideBackupTypeCommand)
export class DecideBackupTypeHandler implements ICommandHandler<DecideBackupTypeCommand, BackupJobResult> {
  constructor(private readonly aggregates: AggregateRepository) {}

  async execute(command: DecideBackupTypeCommand): Promise<BackupJobResult> {
    return jobResult(await this.aggregates.execute(backupStream(command.jobId), backupJobAggregate, { kind: 'decideType', restorePointId: command.restorePointId, last: command.last, plan: command.plan, maxChainDepth: command.maxChainDepth }, command));
  }
}
