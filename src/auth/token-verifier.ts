import { Inject, Injectable } from '@nestjs/common';
import { QueryBus } from '@nestjs/cqrs';
import { ADMIN_ACTOR } from './admin-token';
import { ActiveTokenNameQuery } from './queries/active-token-name.query';
import { hashToken, sameHash } from './token-hash';

export const ADMIN_TOKEN_HASH = Symbol('ADMIN_TOKEN_HASH');

/** Maps a bearer token to the actor name that events will carry, or null. */
@Injectable()
export class TokenVerifier {
  constructor(
    @Inject(ADMIN_TOKEN_HASH) private readonly adminHash: string,
    private readonly queries: QueryBus,
  ) {}

  async actorFor(token: string): Promise<string | null> {
    const hash = hashToken(token);
    if (sameHash(hash, this.adminHash)) return ADMIN_ACTOR;
    return this.queries.execute(new ActiveTokenNameQuery(hash));
  }
}
