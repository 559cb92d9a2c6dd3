import { ReadModel } from '../read-model';
import { ActiveTokenHandler, ListApiTokensHandler } from './api-tokens.queries';
import { ApiTokensProjector } from './api-tokens.projector';

export const apiTokensReadModel: ReadModel = {
  projector: ApiTokensProjector,
  queryHandlers: [ListApiTokensHandler, ActiveTokenHandler],
};
