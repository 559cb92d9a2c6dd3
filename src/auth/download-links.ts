import { Injectable } from '@nestjs/common';
import { randomBytes } from 'node:crypto';

/** What a link may fetch: the API's downloads only (a file or archive of a mount, a disk image of a point). */
export const DOWNLOAD_TARGET = /^\/api\/v1\/(restore\/mounts\/[0-9a-f-]{36}\/(file|archive)|restore-points\/[A-Za-z0-9][A-Za-z0-9._-]{0,127}\/disks\/[A-Za-z0-9][A-Za-z0-9._-]{0,127}\/image)(\?[^#\s]{0,3500})?$/;
export const DOWNLOAD_LINK_PATH = /^\/api\/v1\/download-links\/([A-Za-z0-9_-]{43})$/;
const LIFETIME_MS = 60_000;
/** The one answer for a link that cannot be used, whatever the reason: unknown, used, expired, or its token gone. */
export const NOT_FOUND_LINK = { statusCode: 404, error: 'Not Found', message: 'this download link is unknown, already used or expired (links work once, for a minute)' } as const;

interface Link {
  /** The hash of the token that asked for the link: who the link acts as is asked again when it is used. */
  credential: string;
  target: string;
  expiresAt: number;
}

/**
 * Short-lived single-use links to a download, so a browser can save a large file natively without the bearer
 * token ever being in a URL: the link is a fresh random secret that works once, within a minute, as the token
 * that asked for it (whose access rules apply when it is used), and only while that token is still valid: a link
 * keeps the token's hash, never who the token was when the link was made. They live in this hub process only:
 * a link is used on the hub that issued it (the console's own origin).
 */
@Injectable()
export class DownloadLinks {
  private readonly links = new Map<string, Link>();

  issue(credential: string, target: string): { url: string; expiresAt: Date } {
    this.sweep();
    const secret = randomBytes(32).toString('base64url');
    const expiresAt = Date.now() + LIFETIME_MS;
    this.links.set(secret, { credential, target, expiresAt });
    return { url: `/api/v1/download-links/${secret}`, expiresAt: new Date(expiresAt) };
  }

  /** The link's request and the hash of the token that made it, once; null for a link unknown, used or expired. */
  take(secret: string): Link | null {
    const link = this.links.get(secret);
    this.links.delete(secret);
    return link && link.expiresAt > Date.now() ? link : null;
  }

  private sweep(): void {
    const now = Date.now();
    for (const [secret, link] of this.links) if (link.expiresAt <= now) this.links.delete(secret);
  }
}
