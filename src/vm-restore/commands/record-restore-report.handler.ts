import { CommandHandler, EventBus, ICommandHandler } from '@nestjs/cqrs';
import { AggregateRepository } from '../../eventing/aggregate-repository';
import { DomainError } from '../../eventing/domain-error';
import { restoreAggregate } from '../restore.aggregate';
import { RESTORE_STARTED, restoreStream } from '../restore.events';
import { AgentFinishedRestore, AgentOutcome } from '../restore.notices';
import { RecordRestoreReportCommand } from './record-restore-report.command';
import { RestoreResult, restoreResult } from './restore-result';

@CommandHandler(RecordRestoreReportCommand)
export class RecordRestoreReportHandler implements ICommandHandler<RecordRestoreReportCommand, RestoreResult> {
  constructor(
    private readonly aggregates: AggregateRepository,
    private readonly notices: EventBus,
  ) {}

  async execute(command: RecordRestoreReportCommand): Promise<RestoreResult> {
    const { restoreId, report, causationId } = command;
    const { state } = await this.aggregates.load(restoreStream(restoreId), restoreAggregate);
    if (!state.restoreId) throw new DomainError('not_found', `restore ${restoreId} does not exist`);
    // what the report records (or ends) is caused by the event that asked the agent for the restore, not by any other id
    if ((await this.aggregates.typeOf(restoreStream(restoreId), causationId)) !== RESTORE_STARTED) {
      throw new DomainError('invalid', `X-Causation-Id ${causationId} is not the ${RESTORE_STARTED} of restore ${restoreId}: a report names the event that asked for the restore`);
    }
    if (report.type === 'finished' || report.type === 'failed' || report.type === 'drill-finished') {
      const { type: _type, ...drill } = report.type === 'drill-finished' ? report : { type: '' };
      this.notices.publish(
        new AgentFinishedRestore(restoreId, report.type === 'finished' ? { domain: report.domain } : report.type === 'failed' ? { failure: report.reason, damaged: report.damaged } : { drill: drill as Extract<AgentOutcome, { drill: unknown }>['drill'] }),
      );
      return { position: null, eventIds: [], state };
    }
    // how long the operator waited for a running domain, measured where it is recorded
    const sinceRequestMs = state.requestedAt ? Date.now() - Date.parse(state.requestedAt) : undefined;
    return restoreResult(await this.aggregates.execute(restoreStream(restoreId), restoreAggregate, { kind: 'report', report, sinceRequestMs }, command));
  }
}
