import type { NextFunction, Request, Response } from 'express';

/**
 * Every answer of the hub, the console's files and the API's JSON alike: scripts and styles only from the hub's
 * own origin (an injected `<script>` or inline handler does not run), no plugins, no `<base>` rewriting, never
 * framed (clickjacking), no MIME sniffing (a file downloaded from a mount is never run as HTML or script), and no
 * Referer (a download link in a URL goes nowhere else). `data:` images: the console's empty favicon.
 */
export const CONTENT_SECURITY_POLICY = [
  "default-src 'self'",
  "script-src 'self'",
  "style-src 'self'",
  "img-src 'self' data:",
  "object-src 'none'",
  "base-uri 'none'",
  "form-action 'self'",
  "frame-ancestors 'none'",
].join('; ');

/**
 * The OpenAPI UI's page (@nestjs/swagger) carries inline `<style>` blocks and its UI sets inline styles: its
 * styles may be inline; its scripts are its own files, as everywhere.
 */
const DOCS_UI_POLICY = CONTENT_SECURITY_POLICY.replace("style-src 'self'", "style-src 'self' 'unsafe-inline'");
const DOCS_UI = /^\/api\/docs(\/|$)/;

export function securityHeaders(req: Request, res: Response, next: NextFunction): void {
  res.setHeader('Content-Security-Policy', DOCS_UI.test(req.path) ? DOCS_UI_POLICY : CONTENT_SECURITY_POLICY);
  res.setHeader('X-Content-Type-Options', 'nosniff');
  res.setHeader('Referrer-Policy', 'no-referrer');
  res.setHeader('X-Frame-Options', 'DENY');
  res.removeHeader('X-Powered-By');
  next();
}
