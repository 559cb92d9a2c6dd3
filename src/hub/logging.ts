import { randomUUID } from 'node:crypto';
import type { IncomingMessage } from 'node:http';
import type { Options } from 'pino-http';
import { HubConfig } from '../config/hub-config';

export function pinoHttpOptions(level: HubConfig['logLevel']): Options {
  return {
    level,
    genReqId: (req: IncomingMessage) => (req as IncomingMessage & { correlationId?: string }).correlationId ?? randomUUID(),
    customProps: (req: IncomingMessage) => ({ correlationId: (req as IncomingMessage & { correlationId?: string }).correlationId }),
    redact: ['req.headers.authorization'],
    autoLogging: { ignore: (req) => req.url === '/api/v1/health' || req.url === '/metrics' },
  };
}
