import { Query } from '@nestjs/cqrs';
import { RestorePointRecord } from './restore-point.record';

/** A VM's restore points in chain order, in one repository or all of them. */
export class ListRestorePointsQuery extends Query<RestorePointRecord[]> {
  constructor(
    readonly vmId: string,
    readonly repositoryId?: string,
  ) {
    super();
  }
}
