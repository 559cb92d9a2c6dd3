import { Query } from '@nestjs/cqrs';
import { RestorePointRecord } from './restore-point.record';

/** The points in the recycle bin, soonest purge first; `dueBy`: only those whose grace ended by then. */
export class RecycleBinQuery extends Query<RestorePointRecord[]> {
  constructor(readonly dueBy: Date | null = null) {
    super();
  }
}
