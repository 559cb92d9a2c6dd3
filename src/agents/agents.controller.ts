import { Body, Controller, Get, Param, Post, Put } from '@nestjs/common';
import { QueryBus } from '@nestjs/cqrs';
import { ApiBearerAuth, ApiTags } from '@nestjs/swagger';
import { CommandGateway } from '../projection-runner/command-gateway';
import { AgentRegistration } from './agent-registration.workflow';
import { AgentTunnel } from './agent-tunnel.service';
import { AgentIdParams, InventoryDto, RegisterAgentDto } from './agents.dto';
import { ReportInventoryCommand } from './commands/report-inventory.command';
import { OwnAgentOnly } from './own-agent-only.guard';
import { ListAgentsQuery } from './queries/list-agents.query';
import { ListVmsQuery } from './queries/list-vms.query';
import { Access } from '../http/access.guard';
import { Owned, TenantScope } from '../http/owned';

const READ_MODEL = 'agents';

@ApiTags('agents')
@ApiBearerAuth()
@Controller('api/v1')
export class AgentsController {
  constructor(
    private readonly scope: TenantScope,
    private readonly gateway: CommandGateway,
    private readonly queries: QueryBus,
    private readonly registration: AgentRegistration,
    /** Where agents dial in: only the running SSH server knows its port and host key. */
    private readonly tunnel: AgentTunnel,
  ) {}

  @Access('admin')
  @Owned('global')
  @Post('agents')
  async register(@Body() body: RegisterAgentDto) {
    return { ...(await this.registration.register(body.name, body.publicKey)), ssh: this.tunnel.endpoint() };
  }

  @Access('read')
  @Owned('filtered')
  @Get('agents')
  async list() {
    return this.scope.filter(await this.queries.execute(new ListAgentsQuery()), (a) => ({ agentId: a.agentId }));
  }

  @Access('agent')
  @Owned({ params: { agentId: 'agent' } })
  @Put('agents/:agentId/inventory')
  @OwnAgentOnly()
  async inventory(@Param() { agentId }: AgentIdParams, @Body() body: InventoryDto) {
    await this.gateway.execute(new ReportInventoryCommand(agentId, body.vms), READ_MODEL);
    return { agentId, vms: body.vms.length };
  }

  @Access('read')
  @Owned('filtered')
  @Get('vms')
  async vms() {
    return this.scope.filter(await this.queries.execute(new ListVmsQuery()), (v) => ({ vmId: v.vmId }));
  }
}
