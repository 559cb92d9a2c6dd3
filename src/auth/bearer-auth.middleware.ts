import { Injectable, NestMiddleware } from '@nestjs/common';
import type { NextFunction, Request, Response } from 'express';
import { isConsolePath } from '../console/console-files';
import { setPrincipal } from '../eventing/request-context';
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

/** Every route but the health check needs `Authorization: Bearer <token>`; the token's name becomes the actor, its role says what it may do (AccessGuard). */
@Injectable()
export class BearerAuthMiddleware implements NestMiddleware {
  constructor(
    private readonly verifier: TokenVerifier,
    private readonly links: DownloadLinks,
    private readonly open: TokenBoundResponses,
  ) {}

  async use(req: Request, res: Response, next: NextFunction): Promise<void> {
    const path = req.originalUrl.split('?')[0].replace(/\/+$/, '');
    if (isPublic(req.method, path)) return next();
    const linked = req.method === 'GET' ? DOWNLOAD_LINK_PATH.exec(req.originalUrl) : null;
    if (linked) return this.useLink(linked[1], req, res, next);
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
