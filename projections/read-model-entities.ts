import { ApiTokenView } from './api-tokens/api-token.entity';

/** Every read-model entity the hub's DataSource knows. */
export const READ_MODEL_ENTITIES: Function[] = [ApiTokenView];
