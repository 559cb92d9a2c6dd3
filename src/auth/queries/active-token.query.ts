import { Query } from '@nestjs/cqrs';

/** The name of the active token with this hash, or null. */
export class ActiveTokenNameQuery extends Query<string | null> {
  constructor(readonly tokenHash: string) {
    super();
  }
}
