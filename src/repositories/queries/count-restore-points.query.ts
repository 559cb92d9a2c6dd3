import { Query } from '@nestjs/cqrs';

/** How many restore points a repository holds, counting everything appended before the question. */
export class CountRestorePointsQuery extends Query<number> {
  constructor(readonly repositoryId: string) {
    super();
  }
}
