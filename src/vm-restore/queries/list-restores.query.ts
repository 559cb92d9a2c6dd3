import { Query } from '@nestjs/cqrs';
import type { RestoreRecord } from './restore.record';

/** Newest first; `unfinished` for the workflow's recovery at start. */
export class ListRestoresQuery extends Query<RestoreRecord[]> {
  constructor(readonly filter: { vmId?: string; unfinished?: boolean; limit?: number } = {}) {
    super();
  }
}
