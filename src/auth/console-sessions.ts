import { Injectable } from '@nestjs/common';
import { QueryBus } from '@nestjs/cqrs';
import { ConsoleSessionQuery } from './queries/console-session.query';
import { csrfTokenFor, parseSessionCookie } from './console-sessions/session-cookie';
import { hashToken, sameHash } from './token-hash';

export interface ResolvedSession {
  sessionId: string;
  /** The hash of the token the session was opened with: the request acts as that token, if it still verifies. */
  tokenHash: string;
  csrfToken: string;
}

/** A `Cookie` header's console session, when its secret matches the recorded hash and it has not expired or ended. */
@Injectable()
export class ConsoleSessions {
  constructor(private readonly queries: QueryBus) {}

  async resolve(cookieHeader: string | undefined): Promise<ResolvedSession | null> {
    const cookie = parseSessionCookie(cookieHeader);
    if (!cookie) return null;
    const session = await this.queries.execute(new ConsoleSessionQuery(cookie.sessionId));
    if (!session || !sameHash(hashToken(cookie.secret), session.secretHash) || session.expiresAt.getTime() <= Date.now()) return null;
    return { sessionId: session.sessionId, tokenHash: session.tokenHash, csrfToken: csrfTokenFor(cookie.secret) };
  }
}
