import { Injectable } from '@nestjs/common';
import { AggregateRepository } from '../eventing/aggregate-repository';
import { DomainError } from '../eventing/domain-error';
import { policyAggregate, PolicyState } from './policy.aggregate';
import { policyStream } from './policy.events';
import { policySlotsAggregate, PolicySlotsState } from './policy-slots.aggregate';
import { policySlotsStream } from './policy-slots.events';

/** A policy and its slots as their own streams say now (no read-model lag): what the scheduler decides on; never written here. */
@Injectable()
export class PolicyStates {
  constructor(private readonly aggregates: AggregateRepository) {}

  async policy(policyId: string): Promise<PolicyState> {
    const { state } = await this.aggregates.load(policyStream(policyId), policyAggregate);
    if (!state.policyId || state.deleted) throw new DomainError('not_found', `policy ${policyId} does not exist`);
    return state;
  }

  async slots(policyId: string): Promise<PolicySlotsState> {
    return (await this.aggregates.load(policySlotsStream(policyId), policySlotsAggregate)).state;
  }
}
