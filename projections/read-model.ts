import { Type } from '@nestjs/common';

/** A read model owns its projector and the query handlers (with their SQL) that read it. */
export interface ReadModel {
  projector: Type;
  queryHandlers: Type[];
}
