import { Query } from '@nestjs/cqrs';

/** Ids of the mounts the read model shows mounting or ready for one hub process. */
export class ActiveRestoreMountsQuery extends Query<string[]> {
  constructor(readonly hubInstance: string) {
    super();
  }
}
