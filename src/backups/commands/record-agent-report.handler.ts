import { CommandHandler, EventBus, ICommandHandler } from '@nestjs/cqrs';
import { AggregateRepository } from '../../eventing/aggregate-repository';
import { DomainError } from '../../eventing/domain-error';
import { backupJobAggregate, decisionOf } from '../backup-job.aggregate';
import { backupStream, SNAPSHOT_REQUESTED } from '../backup.events';
import { AgentFinishedJob } from '../backup.notices';
import { BackupJobResult, jobResult } from './backup-job-result';
import { RecordAgentReportCommand } from './record-agent-report.command';

@CommandHandler(RecordAgentReportCommand)
export class RecordAgentReportHandler implements ICommandHandler<RecordAgentReportCommand, BackupJobResult> {
  constructor(
    private readonly aggregates: AggregateRepository,
    private readonly notices: EventBus,
  ) {}

  async execute(command: RecordAgentReportCommand): Promise<BackupJobResult> {
    const { jobId, report, causationId } = command;
    // what the report records is caused by the event that asked the agent for the job, not by any other id
    if ((await this.aggregates.typeOf(backupStream(jobId), causationId)) !== SNAPSHOT_REQUESTED) {
      throw new DomainError('invalid', `X-Causation-Id ${causationId} is not the ${SNAPSHOT_REQUESTED} of backup job ${jobId}: a report names the event that asked for the job`);
    }
    const result = await this.aggregates.execute(backupStream(jobId), backupJobAggregate, decisionOf(report), command);
    if (report.type === 'finished' || report.type === 'failed') this.notices.publish(new AgentFinishedJob(jobId, report.type === 'failed' ? report.reason : null));
    return jobResult(result);
  }
}
