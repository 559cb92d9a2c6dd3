import { Injectable, NestMiddleware } from '@nestjs/common';
import type { NextFunction, Request, Response } from 'express';
import { isConsolePath } from '../console/console-files';
import { setPrincipal } from '../eventing/request-context';
import { ConsoleSessions, ResolvedSession } from './console-sessions';
import { clearCookieHeader, CSRF_HEADER, sameText, SESSION_COOKIE } from './console-sessions/session-cookie';
import { NOT_FOUND_LINK, DOWNLOAD_LINK_PATH, DownloadLinks } from './download-links';
import { hashToken } from './token-hash';
import { TokenBoundResponses } from './token-bound-responses';
import { TokenVerifier } from './token-verifier';

const PUBLIC = new Set(['GET /api/v1/health']);
/**
 * The Swagger UI page and its static assets open in a browser without a token (a browser cannot
 * send one before its "Authorize" button has taken it); every API call, and /api/docs-json,
 * still needs one. No dot-dot segment and no escapes can reach past the UI's own files.
 */
const DOCS_UI = /^\/api\/docs(\/[A-Za-z0-9_-]+(\.[A-Za-z0-9]+)*)?$/;

function isPublic(method: string, path: string): boolean {
  return PUBLIC.has(`${method} ${path}`) || (method === 'GET' && DOCS_UI.test(path)) || ((method === 'GET' || method === 'HEAD') && isConsolePath(path));
}

const SAFE_METHODS = new Set(['GET', 'HEAD', 'OPTIONS']);

/**
 * Why a state-changing request carried by the session cookie is refused, or null when it may go on. SameSite=Strict
 * already keeps the cookie off another site's requests; this holds where SameSite does not (an old browser, a
 * sibling subdomain counting as the same site): the request must carry the session's CSRF token in a header, which
 * only a script of the console's own origin can set (a form cannot, and CORS keeps another origin from it), and
 * must not say it comes from elsewhere.
 */
export function crossSiteRefusal(req: Request, session: ResolvedSession): string | null {
  if (SAFE_METHODS.has(req.method)) return null;
  const site = req.headers['sec-fetch-site'];
  if (site !== undefined && site !== 'same-origin') return `a ${site} request cannot act with the console's session`;
  const origin = req.headers.origin;
  if (origin !== undefined) {
    let host: string | null = null;
    try {
      host = new URL(origin).host;
    } catch {
      // "null" (a sandboxed frame, a file) or garbage: not the console
    }
    if (host === null || host !== req.headers.host) return `a request from ${origin} cannot act with the console's session`;
  }
  const csrf = req.headers[CSRF_HEADER];
  if (typeof csrf !== 'string' || !sameText(csrf, session.csrfToken)) return 'a request with the console session must carry its X-Sendense-CSRF header';
  return null;
}

/**
 * Every route but the health check needs `Authorization: Bearer <token>` or the console's session cookie (which
 * stands for the token it was opened with, verified again on every request); the token's name becomes the actor,
 * its role says what it may do (AccessGuard). A bearer header wins over a cookie: the CLI and agents never send one.
 */
@Injectable()
export class BearerAuthMiddleware implements NestMiddleware {
  constructor(
    private readonly verifier: TokenVerifier,
    private readonly links: DownloadLinks,
    private readonly open: TokenBoundResponses,
    private readonly sessions: ConsoleSessions,
  ) {}

  async use(req: Request, res: Response, next: NextFunction): Promise<void> {
    const path = req.originalUrl.split('?')[0].replace(/\/+$/, '');
    if (isPublic(req.method, path)) return next();
    const linked = req.method === 'GET' ? DOWNLOAD_LINK_PATH.exec(req.originalUrl) : null;
    if (linked) return this.useLink(linked[1], req, res, next);
    if (req.headers.authorization === undefined && req.headers.cookie?.includes(`${SESSION_COOKIE}=`)) return this.useSession(req, res, next);
    const match = /^Bearer ([\x21-\x7e]{1,512})$/.exec(req.headers.authorization ?? '');
    const credential = match ? hashToken(match[1]) : null;
    const principal = credential ? await this.verifier.principalForHash(credential).catch(() => null) : null;
    if (!credential || !principal) {
      res
        .status(401)
        .setHeader('WWW-Authenticate', 'Bearer realm="sendense"')
        .json({ statusCode: 401, error: 'Unauthorized', message: match ? 'the bearer token is not valid' : 'missing "Authorization: Bearer <token>" header' });
      return;
    }
    setPrincipal(principal, credential);
    this.open.track(credential, res);
    next();
  }

  /**
   * The console's cookie acts as the token it was opened with, and only while that token verifies: revoked, or an
   * admin token rotated away, the cookie answers 401 at once, and what it left open is cut as a bearer request's.
   */
  private async useSession(req: Request, res: Response, next: NextFunction): Promise<void> {
    const session = await this.sessions.resolve(req.headers.cookie).catch(() => null);
    const principal = session ? await this.verifier.principalForHash(session.tokenHash).catch(() => null) : null;
    if (!session || !principal) {
      res
        .status(401)
        .setHeader('WWW-Authenticate', 'Bearer realm="sendense"')
        .setHeader('Set-Cookie', clearCookieHeader(req.secure))
        .json({ statusCode: 401, error: 'Unauthorized', message: 'the console session has ended (logged out, expired, or its token revoked): log in again' });
      return;
    }
    const refusal = crossSiteRefusal(req, session);
    if (refusal) {
      res.status(403).json({ statusCode: 403, error: 'Forbidden', message: refusal });
      return;
    }
    setPrincipal(principal, session.tokenHash, { sessionId: session.sessionId, csrfToken: session.csrfToken });
    this.open.track(session.tokenHash, res);
    next();
  }

  /**
   * A download link stands for its request, made by the token that asked for the link; it works once, and only
   * while that token is valid: the token is verified again now, and the download is cut off if it is revoked
   * while the bytes flow. A link whose token is gone answers as one that does not exist.
   */
  private async useLink(secret: string, req: Request, res: Response, next: NextFunction): Promise<void> {
    const link = this.links.take(secret);
    const principal = link ? await this.verifier.principalForHash(link.credential).catch(() => null) : null;
    if (!link || !principal) {
      res.status(404).json(NOT_FOUND_LINK);
      return;
    }
    req.url = link.target;
    setPrincipal(principal, link.credential);
    this.open.track(link.credential, res);
    next();
  }
}
