import { applyDecorators, CanActivate, ExecutionContext, ForbiddenException, Injectable, UseGuards } from '@nestjs/common';
import type { Request } from 'express';
import { currentContext } from '../eventing/request-context';
import { agentTokenName } from './agent.aggregate';
import { AgentStates } from './agent-states';
import { UUID_PATTERN } from '../wire/identifiers';


/** Routes under `agents/:agentId` that only that agent's own token (or the admin) may call. */
@Injectable()
export class OwnAgentOnlyGuard implements CanActivate {
  constructor(private readonly agents: AgentStates) {}

  async canActivate(context: ExecutionContext): Promise<boolean> {
    const agentId = context.switchToHttp().getRequest<Request>().params.agentId;
    // A malformed id is the validation pipe's to refuse with 400, after the guards.
    if (typeof agentId !== 'string' || !UUID_PATTERN.test(agentId)) return true;
    const { actor, role } = currentContext();
    const agent = await this.agents.of(agentId);
    if (role !== 'admin' && actor !== agentTokenName(agent.name!)) throw new ForbiddenException('only the agent itself may report its inventory');
    return true;
  }
}

export const OwnAgentOnly = () => applyDecorators(UseGuards(OwnAgentOnlyGuard));
