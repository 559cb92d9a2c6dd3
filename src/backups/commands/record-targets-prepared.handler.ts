import { CommandHandler, ICommandHandler } from '@nestjs/cqrs';
import { AggregateRepository } from '../../eventing/aggregate-repository';
import { backupJobAggregate } from '../backup-job.aggregate';
import { backupStream } from '../backup.events';
import { BackupJobResult, jobResult } from './backup-job-result';
import { RecordTargetsPreparedCommand } from './record-targets-prepared.command';

@CommandHandler(RecordTargetsPreparedCommand)
export class RecordTargetsPreparedHandler implements ICommandHandler<RecordTargetsPreparedCommand, BackupJobResult> {
  constructor(private readonly aggregates: AggregateRepository) {}

  async execute(command: RecordTargetsPreparedCommand): Promise<BackupJobResult> {
    return jobResult(await this.aggregates.execute(backupStream(command.jobId), backupJobAggregate, { kind: 'targetsPrepared', targets: command.targets }, command));
  }
}
