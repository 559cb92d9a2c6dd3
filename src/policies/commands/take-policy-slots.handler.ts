import { CommandHandler, ICommandHandler } from '@nestjs/cqrs';
import { AggregateRepository } from '../../eventing/aggregate-repository';
import { policySlotsAggregate } from '../policy-slots.aggregate';
import { policySlotsStream } from '../policy-slots.events';
import { TakePolicySlotsCommand } from './take-policy-slots.command';
import { SlotsResult, slotsResult } from './slots-result';

@CommandHandler(TakePolicySlotsCommand)
export class TakePolicySlotsHandler implements ICommandHandler<TakePolicySlotsCommand, SlotsResult> {
  constructor(private readonly aggregates: AggregateRepository) {}

  async execute(command: TakePolicySlotsCommand): Promise<SlotsResult> {
    return slotsResult(await this.aggregates.execute(policySlotsStream(command.decision.policyId), policySlotsAggregate, command.decision, command));
  }
}
