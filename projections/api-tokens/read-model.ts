import { ReadModel } from '../read-model';
import { ActiveTokenNameHandler, ListApiTokensHandler } from './api-tokens.queries';
import { ApiTokensProjector } from './api-tokens.projector';

export const apiTokensReadModel: ReadModel = {
  projector: ApiTokensProjector,
  queryHandlers: [ListApiTokensHandler, ActiveTokenNameHandler],
};
