import { Body, Controller, Get, HttpCode, Param, Post, Put } from '@nestjs/common';
import { QueryBus } from '@nestjs/cqrs';
import { ApiBearerAuth, ApiTags } from '@nestjs/swagger';
import { CommandGateway } from '../projection-runner/command-gateway';
import { AgentRegistration } from './agent-registration.workflow';
import { AgentTunnel } from './agent-tunnel.service';
import { AgentIdParams, InventoryDto, MoveVmDto, RegisterAgentDto, VmIdParams } from './agents.dto';
import { MoveVmCommand } from './commands/move-vm.command';
import { ReportInventoryCommand } from './commands/report-inventory.command';
import { OwnAgentOnly } from './own-agent-only.guard';
import { ListAgentsQuery } from './queries/list-agents.query';
import { ListVmOwnershipConflictsQuery } from './queries/list-vm-ownership-conflicts.query';
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
    const { refused } = await this.gateway.execute(new ReportInventoryCommand(agentId, body.vms), READ_MODEL);
    return { agentId, vms: body.vms.length - refused.length, refused: refused.map((vmId) => ({ vmId, reason: 'another agent owns this VM; an admin can move it to this agent' })) };
  }

  @Access('read')
  @Owned('filtered')
  @Get('vms')
  async vms() {
    return this.scope.filter(await this.queries.execute(new ListVmsQuery()), (v) => ({ vmId: v.vmId }));
  }

  @Access('admin')
  @Owned('global')
  @Get('vm-ownership-conflicts')
  async ownershipConflicts() {
    return this.queries.execute(new ListVmOwnershipConflictsQuery());
  }

  @Access('admin')
  @Owned('global')
  @Post('vms/:vmId/move')
  @HttpCode(200)
  async move(@Param() { vmId }: VmIdParams, @Body() body: MoveVmDto) {
    await this.gateway.execute(new MoveVmCommand(vmId, body.agentId, body.reason), READ_MODEL);
    return { vmId, agentId: body.agentId };
  }
}
