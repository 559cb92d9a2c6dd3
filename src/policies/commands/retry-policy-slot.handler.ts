import { CommandHandler, ICommandHandler } from '@nestjs/cqrs';
import { AggregateRepository } from '../../eventing/aggregate-repository';
import { policySlotsAggregate } from '../policy-slots.aggregate';
import { policySlotsStream } from '../policy-slots.events';
import { RetryPolicySlotCommand } from './retry-policy-slot.command';
import { SlotsResult, slotsResult } from './slots-result';

@CommandHandler(RetryPolicySlotCommand)
export class RetryPolicySlotHandler implements ICommandHandler<RetryPolicySlotCommand, SlotsResult> {
  constructor(private readonly aggregates: AggregateRepository) {}

  async execute(command: RetryPolicySlotCommand): Promise<SlotsResult> {
    return slotsResult(await this.aggregates.execute(policySlotsStream(command.decision.policyId), policySlotsAggregate, command.decision, command));
  }
}
