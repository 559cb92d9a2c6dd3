import { Inject, Injectable } from '@nestjs/common';
import { DataSource } from 'typeorm';
import { ApiTokenView } from '../../projections/api-tokens/api-token.entity';
import { ADMIN_ACTOR } from './admin-token';
import { hashToken, sameHash } from './token-hash';

export const ADMIN_TOKEN_HASH = Symbol('ADMIN_TOKEN_HASH');

/** Maps a bearer token to the actor name that events will carry, or null. */
@Injectable()
export class TokenVerifier {
  constructor(
    @Inject(ADMIN_TOKEN_HASH) private readonly adminHash: string,
    private readonly dataSource: DataSource,
  ) {}

  async actorFor(token: string): Promise<string | null> {
    const hash = hashToken(token);
    if (sameHash(hash, this.adminHash)) return ADMIN_ACTOR;
    const row = await this.dataSource.getRepository(ApiTokenView).findOneBy({ tokenHash: hash, status: 'active' });
    return row ? row.name : null;
  }
}
