import { CanActivate, ExecutionContext, ForbiddenException, Injectable } from '@nestjs/common';
import type { Request } from 'express';
import { AgentsService, agentTokenName } from '../agents/agents.service';
import { currentContext } from '../eventing/request-context';
import { UUID_PATTERN } from '../wire/identifiers';
import { BackupJobReader } from './backup-job.reader';


/** Facts about a job's agent part come from that agent (or the admin), nobody else. */
@Injectable()
export class AgentOwnsJobGuard implements CanActivate {
  constructor(
    private readonly jobs: BackupJobReader,
    private readonly agents: AgentsService,
  ) {}

  async canActivate(context: ExecutionContext): Promise<boolean> {
    const jobId = context.switchToHttp().getRequest<Request>().params.jobId;
    // A malformed id is the validation pipe's to refuse (400), which runs after guards.
    if (typeof jobId !== 'string' || !UUID_PATTERN.test(jobId)) return true;
    const state = await this.jobs.get(jobId);
    const { actor, role } = currentContext();
    if (role === 'admin') return true;
    const agent = await this.agents.state(state.agentId!);
    if (actor !== agentTokenName(agent.name!)) throw new ForbiddenException(`only agent ${agent.name} may report on job ${jobId}`);
    return true;
  }
}
