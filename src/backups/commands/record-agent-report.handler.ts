import { CommandHandler, EventBus, ICommandHandler } from '@nestjs/cqrs';
import { AggregateRepository } from '../../eventing/aggregate-repository';
import { backupJobAggregate, decisionOf } from '../backup-job.aggregate';
import { backupStream } from '../backup.events';
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
    const { jobId, report } = command;
    const result = await this.aggregates.execute(backupStream(jobId), backupJobAggregate, decisionOf(report), command);
    if (report.type === 'finished' || report.type === 'failed') this.notices.publish(new AgentFinishedJob(jobId, report.type === 'failed' ? report.reason : null));
    return jobResult(result);
  }
}
