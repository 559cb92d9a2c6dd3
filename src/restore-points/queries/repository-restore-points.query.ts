import { Query } from '@nestjs/cqrs';
import { RestorePointRecord } from './restore-point.record';

/** Every restore point a repository holds, chain by chain in chain order, counting everything appended before the question. */
export class RepositoryRestorePointsQuery extends Query<RestorePointRecord[]> {
  constructor(readonly repositoryId: string) {
    super();
  }
}
