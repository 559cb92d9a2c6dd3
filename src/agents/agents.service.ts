import { Injectable } from '@nestjs/common';
import { QueryBus } from '@nestjs/cqrs';
import { AgentState } from './agent.aggregate';
import { AgentStates } from './agent-states';
import { GetVmQuery, VmRecord } from './queries/get-vm.query';

export { agentTokenName } from './agent.aggregate';

/** What other features ask about agents: an agent's recorded state, and a VM some agent reports. */
@Injectable()
export class AgentsService {
  constructor(
    private readonly states: AgentStates,
    private readonly queries: QueryBus,
  ) {}

  state(agentId: string): Promise<AgentState> {
    return this.states.of(agentId);
  }

  vm(vmId: string): Promise<VmRecord> {
    return this.queries.execute(new GetVmQuery(vmId));
  }
}
