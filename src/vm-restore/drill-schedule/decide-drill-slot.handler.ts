import { CommandHandler, ICommandHandler } from '@nestjs/cqrs';
import { AggregateRepository } from '../../eventing/aggregate-repository';
import { drillSlotsAggregate } from './drill-slots.aggregate';
import { drillSlotsStream } from './drill-slots.events';
import { DecideDrillSlotCommand, DrillSlotsResult } from './decide-drill-slot.command';

@CommandHandler(DecideDrillSlotCommand)
export class DecideDrillSlotHandler implements ICommandHandler<DecideDrillSlotCommand, DrillSlotsResult> {
  constructor(private readonly aggregates: AggregateRepository) {}

  execute(command: DecideDrillSlotCommand): Promise<DrillSlotsResult> {
    const { policyId, agentId } = command.decision;
    return this.aggregates.execute(drillSlotsStream(policyId, agentId), drillSlotsAggregate, command.decision, command);
  }
}
