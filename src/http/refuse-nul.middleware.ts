import { Injectable, NestMiddleware } from '@nestjs/common';
import type { NextFunction, Request, Response } from 'express';

/**
 * NUL is in no id, name, path or text the hub takes, and PostgreSQL refuses it in text and jsonb (the event store and
 * every read model): a request that carries one in its path, query string or JSON body is a 400 here, after the body
 * is parsed and before any guard or handler reads it. It was a 500 from whichever query met it first.
 */
@Injectable()
export class RefuseNulMiddleware implements NestMiddleware {
  use(req: Request, res: Response, next: NextFunction): void {
    const where = /%00|\0/.test(req.originalUrl) ? 'the path or query string' : holdsNul(req.body) ? 'the body' : null;
    if (where) {
      res.status(400).json({ statusCode: 400, error: 'Bad Request', message: `${where} holds a NUL character, which no field takes` });
      return;
    }
    next();
  }
}

/** Keys too: a key becomes a field name in the event data. A parsed JSON body is a tree, so the walk ends. */
function holdsNul(value: unknown): boolean {
  if (typeof value === 'string') return value.includes('\0');
  if (Array.isArray(value)) return value.some(holdsNul);
  if (value && typeof value === 'object' && !Buffer.isBuffer(value)) return Object.entries(value).some(([key, v]) => key.includes('\0') || holdsNul(v));
  return false;
}
