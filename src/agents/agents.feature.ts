import { AgentCalls } from './agent-calls';
import { AgentRegistration } from './agent-registration.workflow';
import { AgentStates } from './agent-states';
import { AgentTunnel } from './agent-tunnel.service';
import { AgentsController } from './agents.controller';
import { AgentsService } from './agents.service';
import { MoveVmHandler } from './commands/move-vm.handler';
import { RecordAgentConnectedHandler } from './commands/record-agent-connected.handler';
import { RecordAgentDisconnectedHandler } from './commands/record-agent-disconnected.handler';
import { RegisterAgentHandler } from './commands/register-agent.handler';
import { ReportInventoryHandler } from './commands/report-inventory.handler';
import { OwnAgentOnlyGuard } from './own-agent-only.guard';

export const agentsFeature = {
  controllers: [AgentsController],
  providers: [RegisterAgentHandler, RecordAgentConnectedHandler, RecordAgentDisconnectedHandler, ReportInventoryHandler, MoveVmHandler, AgentStates, AgentRegistration, AgentsService, AgentTunnel, OwnAgentOnlyGuard, AgentCalls],
};
