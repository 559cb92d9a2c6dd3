import { CommandHandler, ICommandHandler } from '@nestjs/cqrs';
import { AggregateRepository } from '../../eventing/aggregate-repository';
import { restoreAggregate } from '../restore.aggregate';
import { restoreStream } from '../restore.events';
import { RecordDrillResultCommand } from './record-drill-result.command';
import { RestoreResult, restoreResult } from './restore-result';

@CommandHandler(RecordDrillResultCommand)
export class RecordDrillResultHandler implements ICommandHandler<RecordDrillResultCommand, RestoreResult> {
  constructor(private readonly aggregates: AggregateRepository) {}

  async execute(c: RecordDrillResultCommand): Promise<RestoreResult> {
    const decision = { kind: 'drillResult' as const, passed: c.passed, bootMs: c.bootMs, reason: c.reason, consistency: c.consistency, screenshot: c.screenshot };
    return restoreResult(await this.aggregates.execute(restoreStream(c.restoreId), restoreAggregate, decision, c));
  }
}
