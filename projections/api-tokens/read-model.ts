import { ReadModel } from '../read-model';
import { ApiTokensProjector } from './api-tokens.projector';

export const apiTokensReadModel: ReadModel = {
  projector: ApiTokensProjector,
  queryHandlers: [],
};
