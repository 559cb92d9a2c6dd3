import { Query } from '@nestjs/cqrs';
import type { Principal } from '../../eventing/request-context';

/** Who the active token with this hash is (its name and role), or null. */
export class ActiveTokenQuery extends Query<Principal | null> {
  constructor(readonly tokenHash: string) {
    super();
  }
}
