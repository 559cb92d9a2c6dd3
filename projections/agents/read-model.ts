import { ReadModel } from '../read-model';
import { AgentByFingerprintHandler, AgentRegistrationConflictsHandler, GetVmHandler, ListAgentsHandler, ListVmsHandler } from './agents.queries';
import { AgentsProjector } from './agents.projector';

export const agentsReadModel: ReadModel = {
  projector: AgentsProjector,
  queryHandlers: [ListAgentsHandler, ListVmsHandler, GetVmHandler, AgentByFingerprintHandler, AgentRegistrationConflictsHandler],
};
