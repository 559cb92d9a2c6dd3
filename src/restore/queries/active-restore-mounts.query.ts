import { Query } from '@nestjs/cqrs';

/** Ids of the mounts the read model shows mounting or ready for one hub process. */
export class ActiveRestoreMountsQuery extends Query<string[]> {
  constructor(readonly hubInstance: string) {
    super();
  }
}

/** The mounts the read model shows mounting or ready for hub processes other than this one, with the process of each. */
export class OthersRestoreMountsQuery extends Query<{ mountId: string; hubInstance: string }[]> {
  constructor(readonly hubInstance: string) {
    super();
  }
}
