import { ReadModel } from '../read-model';
import { GetPolicyHandler, ListPoliciesHandler } from './policies.queries';
import { PoliciesProjector } from './policies.projector';

export const policiesReadModel: ReadModel = {
  projector: PoliciesProjector,
  queryHandlers: [ListPoliciesHandler, GetPolicyHandler],
};
