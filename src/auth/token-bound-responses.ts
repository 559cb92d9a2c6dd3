import { Injectable, Logger, OnModuleDestroy } from '@nestjs/common';
import type { Response } from 'express';
import { TokenVerifier } from './token-verifier';

/**
 * How often open responses have their token verified again. Revocation is recorded in the shared database, and
 * a hub learns of it only by asking: this bounds how long a stream or a download outlives its token, on every hub.
 */
export const RECHECK_MS = 250;

/**
 * Responses still open, by the hash of the token that made the request (or the download link). A live stream or
 * a 64 MiB image would otherwise go on for as long as the client keeps reading, whatever happened to its token:
 * each open response's token is verified again every RECHECK_MS, and the responses of one that no longer verifies
 * (revoked, or an admin token rotated) are cut off (the socket destroyed: the client sees the stream end, never
 * a complete-looking answer).
 */
@Injectable()
export class TokenBoundResponses implements OnModuleDestroy {
  private readonly logger = new Logger(TokenBoundResponses.name);
  private readonly open = new Map<string, Set<Response>>();
  private timer: NodeJS.Timeout | undefined;
  private checking = false;

  constructor(private readonly verifier: TokenVerifier) {}

  track(credential: string, res: Response): void {
    let responses = this.open.get(credential);
    if (!responses) this.open.set(credential, (responses = new Set()));
    responses.add(res);
    res.once('close', () => {
      responses.delete(res);
      if (responses.size === 0 && this.open.get(credential) === responses) this.open.delete(credential);
    });
    this.timer ??= setInterval(() => void this.recheck(), RECHECK_MS).unref();
  }

  onModuleDestroy(): void {
    clearInterval(this.timer);
    this.timer = undefined;
  }

  private async recheck(): Promise<void> {
    if (this.open.size === 0) {
      clearInterval(this.timer);
      this.timer = undefined;
      return;
    }
    if (this.checking) return;
    this.checking = true;
    try {
      await Promise.all(
        [...this.open.keys()].map(async (credential) => {
          // a database that cannot answer is not a revocation: the next check asks again
          const principal = await this.verifier.principalForHash(credential).catch(() => undefined);
          if (principal !== null) return;
          const responses = this.open.get(credential);
          this.open.delete(credential);
          if (responses?.size) this.logger.log(`token revoked: ${responses.size} open response(s) cut off`);
          for (const res of responses ?? []) res.destroy();
        }),
      );
    } finally {
      this.checking = false;
    }
  }
}
