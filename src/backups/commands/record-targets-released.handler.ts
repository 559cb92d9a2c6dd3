import { CommandHandler, ICommandHandler } from '@nestjs/cqrs';
import { AggregateRepository } from '../../eventing/aggregate-repository';
import { backupJobAggregate } from '../backup-job.aggregate';
import { backupStream } from '../backup.events';
import { BackupJobResult, jobResult } from './backup-job-result';
import { RecordTargetsReleasedCommand } from './record-targets-released.command';

@CommandHandler(RecordTargetsReleasedCommand)
export class RecordTargetsReleasedHandler implements ICommandHandler<RecordTargetsReleasedCommand, BackupJobResult> {
  constructor(private readonly aggregates: AggregateRepository) {}

  async execute(command: RecordTargetsReleasedCommand): Promise<BackupJobResult> {
    return jobResult(await this.aggregates.execute(backupStream(command.jobId), backupJobAggregate, { kind: 'targetsReleased', filesRemoved: command.filesRemoved }, command));
  }
}
