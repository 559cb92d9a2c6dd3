import { CommandHandler, EventBus, ICommandHandler } from '@nestjs/cqrs';
import { AggregateRepository } from '../../eventing/aggregate-repository';
import { DomainError } from '../../eventing/domain-error';
import { restoreAggregate } from '../restore.aggregate';
import { restoreStream } from '../restore.events';
import { AgentFinishedRestore } from '../restore.notices';
import { RecordRestoreReportCommand } from './record-restore-report.command';
import { RestoreResult, restoreResult } from './restore-result';

@CommandHandler(RecordRestoreReportCommand)
export class RecordRestoreReportHandler implements ICommandHandler<RecordRestoreReportCommand, RestoreResult> {
  constructor(
    private readonly aggregates: AggregateRepository,
    private readonly notices: EventBus,
  ) {}

  async execute(command: RecordRestoreReportCommand): Promise<RestoreResult> {
    const { restoreId, report } = command;
    if (report.type === 'finished' || report.type === 'failed') {
      const { state } = await this.aggregates.load(restoreStream(restoreId), restoreAggregate);
      if (!state.restoreId) throw new DomainError('not_found', `restore ${restoreId} does not exist`);
      this.notices.publish(new AgentFinishedRestore(restoreId, report.type === 'finished' ? { domain: report.domain } : { failure: report.reason, damaged: report.damaged }));
      return { position: null, eventIds: [], state };
    }
    return restoreResult(await this.aggregates.execute(restoreStream(restoreId), restoreAggregate, { kind: 'report', report }, command));
  }
}
