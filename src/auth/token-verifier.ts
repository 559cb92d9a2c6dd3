import { Inject, Injectable } from '@nestjs/common';
import { QueryBus } from '@nestjs/cqrs';
import type { Principal } from '../eventing/request-context';
import { ADMIN_ACTOR } from './admin-token';
import { ActiveTokenQuery } from './queries/active-token.query';
import { hashToken, sameHash } from './token-hash';

export const ADMIN_TOKEN_HASH = Symbol('ADMIN_TOKEN_HASH');

/** Maps a bearer token to who it is: the actor name events will carry, and its role; null for no valid token. */
@Injectable()
export class TokenVerifier {
  constructor(
    @Inject(ADMIN_TOKEN_HASH) private readonly adminHash: string,
    private readonly queries: QueryBus,
  ) {}

  async principalFor(token: string): Promise<Principal | null> {
    const hash = hashToken(token);
    if (sameHash(hash, this.adminHash)) return { actor: ADMIN_ACTOR, role: 'admin', tenantId: null };
    return this.queries.execute(new ActiveTokenQuery(hash));
  }
}
