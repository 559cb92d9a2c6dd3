import { Body, Controller, ForbiddenException, Get, Param, Post, Put } from '@nestjs/common';
import { ApiBearerAuth, ApiTags } from '@nestjs/swagger';
import { ADMIN_ACTOR } from '../auth/admin-token';
import { currentContext } from '../eventing/request-context';
import { ProjectionsService } from '../projection-runner/projections.service';
import { AgentIdParams, InventoryDto, RegisterAgentDto } from './agents.dto';
import { agentTokenName, AgentsService } from './agents.service';
import { AgentTunnel } from './agent-tunnel.service';

const READ_MODEL = 'agents';

@ApiTags('agents')
@ApiBearerAuth()
@Controller('api/v1')
export class AgentsController {
  constructor(
    private readonly agents: AgentsService,
    private readonly tunnel: AgentTunnel,
    private readonly projections: ProjectionsService,
  ) {}

  @Post('agents')
  async register(@Body() body: RegisterAgentDto) {
    const agent = await this.agents.register(body.name, body.publicKey);
    await Promise.all([this.projections.waitFor(READ_MODEL, agent.position), this.projections.waitForCaughtUp('api-tokens')]);
    return { agentId: agent.agentId, name: agent.name, fingerprint: agent.fingerprint, token: agent.token, ssh: this.tunnel.endpoint() };
  }

  @Get('agents')
  async list() {
    return (await this.agents.list()).map((a) => ({ agentId: a.agentId, name: a.name, fingerprint: a.fingerprint, connected: a.connected, remoteAddress: a.remoteAddress, lastSeenAt: a.lastSeenAt, registeredAt: a.registeredAt }));
  }

  @Put('agents/:agentId/inventory')
  async inventory(@Param() { agentId }: AgentIdParams, @Body() body: InventoryDto) {
    const state = await this.agents.state(agentId);
    const actor = currentContext().actor;
    if (actor !== ADMIN_ACTOR && actor !== agentTokenName(state.name!)) throw new ForbiddenException('only the agent itself may report its inventory');
    const position = await this.agents.reportInventory(agentId, body.vms);
    await this.projections.waitFor(READ_MODEL, position);
    return { agentId, vms: body.vms.length };
  }

  @Get('vms')
  async vms() {
    const agents = new Map((await this.agents.list()).map((a) => [a.agentId, a]));
    return (await this.agents.vms()).map((vm) => ({ vmId: vm.vmId, name: vm.name, agentId: vm.agentId, agentConnected: agents.get(vm.agentId)?.connected ?? false, disks: vm.disks, reportedAt: vm.reportedAt }));
  }
}
