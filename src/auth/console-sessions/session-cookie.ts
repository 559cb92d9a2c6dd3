import { createHash, randomBytes, timingSafeEqual } from 'node:crypto';
import { UUID_TEXT } from '../../wire/identifiers';

export const SESSION_COOKIE = 'sendense_session';
export const CSRF_HEADER = 'x-sendense-csrf';
/** An absolute lifetime: a browser left logged in does not stay so for ever, whatever its token does. */
export const SESSION_LIFETIME_MS = 12 * 60 * 60 * 1000;

const VALUE = new RegExp(`^(${UUID_TEXT})\\.([A-Za-z0-9_-]{43})$`);

export function newSessionSecret(): string {
  return randomBytes(32).toString('base64url');
}

/** `<sessionId>.<secret>`: the id finds the session's stream, the secret (only its hash is recorded) proves it. */
export function sessionCookieValue(sessionId: string, secret: string): string {
  return `${sessionId}.${secret}`;
}

export function parseSessionCookie(header: string | undefined): { sessionId: string; secret: string } | null {
  if (!header) return null;
  for (const part of header.split(';')) {
    const eq = part.indexOf('=');
    if (eq < 0 || part.slice(0, eq).trim() !== SESSION_COOKIE) continue;
    const m = VALUE.exec(part.slice(eq + 1).trim());
    return m ? { sessionId: m[1], secret: m[2] } : null;
  }
  return null;
}

/**
 * The session's CSRF token, derived from the cookie's secret: the hub needs to store nothing more, and a page of
 * another site, which can make the browser send the cookie but never read it, cannot compute it. The console reads
 * it from the log-in answer and GET /api/v1/session and keeps it in memory only.
 */
export function csrfTokenFor(secret: string): string {
  return createHash('sha256').update(`sendense-csrf\0${secret}`, 'utf8').digest('base64url');
}

export function sameText(a: string, b: string): boolean {
  const x = Buffer.from(a, 'utf8');
  const y = Buffer.from(b, 'utf8');
  return x.length === y.length && timingSafeEqual(x, y);
}

/**
 * HttpOnly: no script reads it, an injected one included. SameSite=Strict: another site's page does not make the
 * browser send it. Secure when the hub serves HTTPS (a loopback HTTP hub, for development, could not set it back).
 * No Max-Age: it goes with the browser session; the hub ends it after SESSION_LIFETIME_MS anyway.
 */
export function setCookieHeader(value: string, secure: boolean): string {
  return `${SESSION_COOKIE}=${value}; Path=/; HttpOnly; SameSite=Strict${secure ? '; Secure' : ''}`;
}

export function clearCookieHeader(secure: boolean): string {
  return `${SESSION_COOKIE}=; Path=/; HttpOnly; SameSite=Strict${secure ? '; Secure' : ''}; Max-Age=0`;
}
