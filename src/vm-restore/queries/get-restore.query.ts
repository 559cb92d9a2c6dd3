import { Query } from '@nestjs/cqrs';
import type { RestoreRecord } from './restore.record';

export class GetRestoreQuery extends Query<RestoreRecord> {
  constructor(readonly restoreId: string) {
    super();
  }
}
