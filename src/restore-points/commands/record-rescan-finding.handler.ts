import { CommandHandler, ICommandHandler } from '@nestjs/cqrs';
import { AggregateRepository } from '../../eventing/aggregate-repository';
import { chainAggregate } from '../chain.aggregate';
import { CHAIN_BROKEN, chainStream } from '../chain.events';
import { RecordRescanFindingCommand, RescanFinding } from './record-rescan-finding.command';

@CommandHandler(RecordRescanFindingCommand)
export class RecordRescanFindingHandler implements ICommandHandler<RecordRescanFindingCommand, RescanFinding> {
  constructor(private readonly aggregates: AggregateRepository) {}

  async execute(command: RecordRescanFindingCommand): Promise<RescanFinding> {
    const { point, missingFiles } = command;
    const { events, position, eventIds } = await this.aggregates.execute(chainStream(point.vmId, point.repositoryId), chainAggregate, { kind: 'recordRescanFinding', point, missingFiles }, command);
    const broken = events.find((e) => e.type === CHAIN_BROKEN);
    const outcome = events.length === 0 ? 'known' : broken ? 'broken' : 'added';
    return { outcome, reason: broken ? (broken.data as { reason: string }).reason : null, position, eventIds };
  }
}
