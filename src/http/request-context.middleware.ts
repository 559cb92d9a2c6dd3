import { Injectable, NestMiddleware } from '@nestjs/common';
import { randomUUID } from 'node:crypto';
import type { NextFunction, Request, Response } from 'express';
import { runWithContext, SYSTEM_ACTOR } from '../eventing/request-context';

const CORRELATION_HEADER = 'x-correlation-id';
const VALID_CORRELATION = /^[A-Za-z0-9._:-]{1,128}$/;

/** One correlation id per request: the caller's X-Correlation-Id when well-formed, else a new one. */
@Injectable()
export class RequestContextMiddleware implements NestMiddleware {
  use(req: Request, res: Response, next: NextFunction): void {
    const given = req.headers[CORRELATION_HEADER];
    if (given !== undefined && (typeof given !== 'string' || !VALID_CORRELATION.test(given))) {
      res.status(400).json({ statusCode: 400, error: 'Bad Request', message: 'X-Correlation-Id must be 1-128 characters of A-Z a-z 0-9 . _ : -' });
      return;
    }
    const correlationId = typeof given === 'string' ? given : randomUUID();
    res.setHeader('X-Correlation-Id', correlationId);
    (req as Request & { correlationId?: string }).correlationId = correlationId;
    runWithContext({ correlationId, actor: SYSTEM_ACTOR }, () => next());
  }
}
