import { Inject, Injectable } from '@nestjs/common';
import { QueryBus } from '@nestjs/cqrs';
import type { Principal } from '../eventing/request-context';
import { ADMIN_ACTOR } from './admin-token';
import { ActiveTokenQuery } from './queries/active-token.query';
import { AdminTokenQuery } from './queries/admin-token.query';
import { hashToken, sameHash } from './token-hash';

export const ADMIN_TOKEN_HASH = Symbol('ADMIN_TOKEN_HASH');

const ADMIN: Principal = { actor: ADMIN_ACTOR, role: 'admin', tenantId: null };

/** Maps a bearer token to who it is: the actor name events will carry, and its role; null for no valid token. */
@Injectable()
export class TokenVerifier {
  constructor(
    @Inject(ADMIN_TOKEN_HASH) private readonly configuredAdminHash: string,
    private readonly queries: QueryBus,
  ) {}

  principalFor(token: string): Promise<Principal | null> {
    return this.principalForHash(hashToken(token));
  }

  /**
   * Asked again for every request and for whatever a request left open (download links, streams): a token revoked,
   * or an admin token rotated, on any hub sharing the database answers null from then on.
   */
  async principalForHash(hash: string): Promise<Principal | null> {
    const token = await this.queries.execute(new ActiveTokenQuery(hash));
    if (token) return token;
    // once rotated through the API, the recorded admin token replaces the configured one (admin.token, SENDENSE_ADMIN_TOKEN)
    const rotated = await this.queries.execute(new AdminTokenQuery());
    return sameHash(hash, rotated?.tokenHash ?? this.configuredAdminHash) ? ADMIN : null;
  }
}
