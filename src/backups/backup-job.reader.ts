import { Injectable } from '@nestjs/common';
import { AggregateRepository } from '../eventing/aggregate-repository';
import { DomainError } from '../eventing/domain-error';
import { backupJobAggregate, BackupJobState } from './backup-job.aggregate';
import { backupStream } from './backup.events';

/** A job's state as its own stream says it now (no read-model lag), for the workflow and the guards; never written here. */
@Injectable()
export class BackupJobReader {
  constructor(private readonly aggregates: AggregateRepository) {}

  async find(jobId: string): Promise<BackupJobState | null> {
    const { state } = await this.aggregates.load(backupStream(jobId), backupJobAggregate);
    return state.jobId ? state : null;
  }

  async get(jobId: string): Promise<BackupJobState> {
    const state = await this.find(jobId);
    if (!state) throw new DomainError('not_found', `backup job ${jobId} does not exist`);
    return state;
  }
}
