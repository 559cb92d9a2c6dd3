import { ReadModel } from '../read-model';
import { AgentsProjector } from './agents.projector';

export const agentsReadModel: ReadModel = {
  projector: AgentsProjector,
  queryHandlers: [],
};
