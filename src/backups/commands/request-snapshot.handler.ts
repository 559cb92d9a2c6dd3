import { CommandHandler, ICommandHandler } from '@nestjs/cqrs';
import { AggregateRepository } from '../../eventing/aggregate-repository';
import { backupJobAggregate } from '../backup-job.aggregate';
import { backupStream } from '../backup.events';
import { BackupJobResult, jobResult } from './backup-job-result';
import { RequestSnapshotCommand } from './request-snapshot.command';

@CommandHandler(RequestSnapshotCommand)
export class RequestSnapshotHandler implements ICommandHandler<RequestSnapshotCommand, BackupJobResult> {
  constructor(private readonly aggregates: AggregateRepository) {}

  async execute(command: RequestSnapshotCommand): Promise<BackupJobResult> {
    return jobResult(await this.aggregates.execute(backupStream(command.jobId), backupJobAggregate, { kind: 'snapshotRequested' }, command));
  }
}
