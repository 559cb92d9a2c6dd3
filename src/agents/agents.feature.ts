import { AgentTunnel } from './agent-tunnel.service';
import { AgentsController } from './agents.controller';
import { AgentsService } from './agents.service';

export const agentsFeature = {
  controllers: [AgentsController],
  providers: [AgentsService, AgentTunnel],
};
