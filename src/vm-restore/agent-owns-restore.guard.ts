import { CanActivate, ExecutionContext, ForbiddenException, Injectable } from '@nestjs/common';
import type { Request } from 'express';
import { AgentsService, agentTokenName } from '../agents/agents.service';
import { currentContext } from '../eventing/request-context';
import { UUID_PATTERN } from '../wire/identifiers';
import { RestoreReader } from './restore.reader';


/** A restore's reports and its digests are its agent's (or the admin's), nobody else's: the digests describe a VM's data. */
@Injectable()
export class AgentOwnsRestoreGuard implements CanActivate {
  constructor(
    private readonly restores: RestoreReader,
    private readonly agents: AgentsService,
  ) {}

  async canActivate(context: ExecutionContext): Promise<boolean> {
    const restoreId = context.switchToHttp().getRequest<Request>().params.restoreId;
    // A malformed id is the validation pipe's to refuse (400), which runs after guards.
    if (typeof restoreId !== 'string' || !UUID_PATTERN.test(restoreId)) return true;
    const state = await this.restores.get(restoreId);
    const { actor, role } = currentContext();
    if (role === 'admin') return true;
    const agent = await this.agents.state(state.agentId!);
    if (actor !== agentTokenName(agent.name!)) throw new ForbiddenException(`only agent ${agent.name} may act on restore ${restoreId}`);
    return true;
  }
}
