import { Injectable } from '@nestjs/common';
import { AggregateRepository } from '../eventing/aggregate-repository';
import { DomainError } from '../eventing/domain-error';
import { agentAggregate, AgentState } from './agent.aggregate';
import { agentStream } from './agent.events';

/** An agent's state from its own stream: what authorisation and the tunnel decide on, never a lagging read model. */
@Injectable()
export class AgentStates {
  constructor(private readonly aggregates: AggregateRepository) {}

  async of(agentId: string): Promise<AgentState> {
    const { state } = await this.aggregates.load(agentStream(agentId), agentAggregate);
    if (!state.registered) throw new DomainError('not_found', `agent ${agentId} is not registered`);
    return state;
  }
}
