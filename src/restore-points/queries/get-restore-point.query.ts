import { Query } from '@nestjs/cqrs';
import { RestorePointRecord } from './restore-point.record';

/** 404 when there is no such restore point. */
export class GetRestorePointQuery extends Query<RestorePointRecord> {
  constructor(readonly restorePointId: string) {
    super();
  }
}
