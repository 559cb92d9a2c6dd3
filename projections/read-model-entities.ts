/** Every read-model entity the hub's DataSource knows. */
export const READ_MODEL_ENTITIES: Function[] = [];
