import { ReadModel } from '../read-model';
import { AgentByFingerprintHandler, AgentRegistrationConflictsHandler, GetVmHandler, ListAgentsHandler, ListVmOwnershipConflictsHandler, ListVmsHandler, MatchingVmsHandler } from './agents.queries';
import { AgentsProjector } from './agents.projector';

export const agentsReadModel: ReadModel = {
  projector: AgentsProjector,
  queryHandlers: [ListAgentsHandler, ListVmsHandler, GetVmHandler, AgentByFingerprintHandler, AgentRegistrationConflictsHandler, ListVmOwnershipConflictsHandler, MatchingVmsHandler],
};
