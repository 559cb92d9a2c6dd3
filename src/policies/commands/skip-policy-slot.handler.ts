import { CommandHandler, ICommandHandler } from '@nestjs/cqrs';
import { AggregateRepository } from '../../eventing/aggregate-repository';
import { policySlotsAggregate } from '../policy-slots.aggregate';
import { policySlotsStream } from '../policy-slots.events';
import { SkipPolicySlotCommand } from './skip-policy-slot.command';
import { SlotsResult, slotsResult } from './slots-result';

@CommandHandler(SkipPolicySlotCommand)
export class SkipPolicySlotHandler implements ICommandHandler<SkipPolicySlotCommand, SlotsResult> {
  constructor(private readonly aggregates: AggregateRepository) {}

  async execute(command: SkipPolicySlotCommand): Promise<SlotsResult> {
    return slotsResult(await this.aggregates.execute(policySlotsStream(command.decision.policyId), policySlotsAggregate, command.decision, command));
  }
}
